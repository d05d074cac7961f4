# Copyright (c) mmbinpc contributors. All rights reserved.
"""Point-cloud classifier: backbone -> global pooling site -> MLP head."""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample
from mmengine.model import BaseModel
from torch import Tensor

from mmbinpc.models.backbones.pointnet import build_pool

SampleList = List[Det3DDataSample]


@MODELS.register_module()
class PointClassifier(BaseModel):
    """Classify whole point clouds.

    ``points -> backbone -> per-point features (B, C, N) -> pool (a
    PointPool: max, avg, max+avg or EMA) -> (B, C') -> head -> logits``.

    Backbones may return a tensor (B, C, N) or a dict. From a dict the
    per-point features are ``point_feats`` (mmbinpc backbones) or the last
    entry of ``sa_features`` (mmdet3d's PointNet++ backbones); the key can
    be forced with ``feature_key``. A dict entry ``losses`` (e.g. PointNet's
    ``loss_feat_transform``) is added to the training losses.

    Args:
        backbone (dict): Backbone config.
        head (dict): Head config (:class:`PointClsHead`).
        pool (dict, optional): Global pooling config, a PointPool. Defaults
            to ``dict(type='PointPool', mode='max')``.
        feature_key (str, optional): Key of the per-point features in a dict
            backbone output. Defaults to None (automatic).
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='Det3DDataPreprocessor')``.
        train_cfg (dict, optional): Unused, kept for config symmetry.
        test_cfg (dict, optional): Unused, kept for config symmetry.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 pool: Optional[dict] = None,
                 feature_key: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='Det3DDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # Built here from mmdet3d's registry: mmengine's BaseModel would
            # look unscoped names up in its own root registry.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.pool = build_pool(pool)
        self.head = MODELS.build(head)
        self.feature_key = feature_key
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    # ------------------------------------------------------------------ #
    @staticmethod
    def _stack_points(batch_inputs_dict: dict) -> Tensor:
        if 'points' not in batch_inputs_dict:
            raise KeyError('PointClassifier needs batch_inputs_dict["points"]'
                           f'; got keys {sorted(batch_inputs_dict)}')
        points = batch_inputs_dict['points']
        if isinstance(points, Tensor):
            return points if points.dim() == 3 else points.unsqueeze(0)
        sizes = {tuple(p.shape) for p in points}
        if len(sizes) != 1:
            raise ValueError(
                f'all point clouds of a batch must have the same shape to be '
                f'stacked, got {sorted(sizes)}; sample a fixed number of '
                f'points (ModelNet40Dataset num_points)')
        return torch.stack(list(points), dim=0)

    def _point_features(self, out: Union[Tensor, dict]) -> Tensor:
        if isinstance(out, Tensor):
            return out
        key = self.feature_key
        if key is None:
            if 'point_feats' in out:
                key = 'point_feats'
            elif 'sa_features' in out:
                key = 'sa_features'
            else:
                raise KeyError(
                    f'cannot find per-point features in the backbone output '
                    f'(keys {sorted(out)}); set PointClassifier.feature_key')
        feats = out[key]
        if isinstance(feats, (list, tuple)):
            feats = feats[-1]
        return feats

    def _global_feat(
            self, batch_inputs_dict: dict) -> Tuple[Tensor, Dict[str, Tensor]]:
        out = self.backbone(self._stack_points(batch_inputs_dict))
        losses = {}
        if isinstance(out, dict):
            losses = dict(out.get('losses') or {})
        feats = self._point_features(out)  # (B, C, N)
        return self.pool(feats), losses

    # ------------------------------------------------------------------ #
    def extract_feat(self, batch_inputs_dict: dict) -> Tensor:
        """The pooled global feature (B, C)."""
        return self._global_feat(batch_inputs_dict)[0]

    def _forward(self,
                 batch_inputs_dict: dict,
                 data_samples: Optional[SampleList] = None) -> Tensor:
        """Logits (B, K)."""
        return self.head(self.extract_feat(batch_inputs_dict))

    @staticmethod
    def _labels(data_samples: SampleList, device: torch.device) -> Tensor:
        labels = []
        for i, sample in enumerate(data_samples):
            if 'gt_label' not in sample:
                raise KeyError(f'data sample {i} has no gt_label; pack the '
                               f'data with PackClsInputs')
            labels.append(torch.as_tensor(sample.gt_label).reshape(()))
        return torch.stack(labels).to(device=device, dtype=torch.long)

    def loss_and_logits(
            self, batch_inputs_dict: dict,
            data_samples: SampleList) -> Tuple[Dict[str, Tensor], Tensor]:
        """Training losses and the logits they were computed from.

        Returns:
            tuple: ``(losses, logits)``; losses hold ``loss_ce`` and the
            backbone's extra losses.
        """
        feats, extra = self._global_feat(batch_inputs_dict)
        logits = self.head(feats)
        labels = self._labels(data_samples, logits.device)
        losses = dict(loss_ce=self.head.loss_by_logits(logits, labels))
        losses.update(extra)
        return losses, logits

    def loss(self, batch_inputs_dict: dict,
             data_samples: SampleList) -> Dict[str, Tensor]:
        """Training losses: ``loss_ce`` plus backbone extra losses."""
        return self.loss_and_logits(batch_inputs_dict, data_samples)[0]

    def predict(self,
                batch_inputs_dict: dict,
                data_samples: Optional[SampleList] = None) -> SampleList:
        """Fill ``pred_label`` (0-dim long) and ``pred_score`` (K,)."""
        logits = self._forward(batch_inputs_dict)
        scores = logits.softmax(dim=1)
        labels = scores.argmax(dim=1)
        if data_samples is None:
            data_samples = [Det3DDataSample() for _ in range(len(logits))]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.pred_score = score.detach()
            sample.pred_label = label.detach()
        return data_samples

    def forward(self,
                inputs: dict,
                data_samples: Optional[SampleList] = None,
                mode: str = 'tensor'):
        """mmengine entry: ``mode`` is 'loss', 'predict' or 'tensor'."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f'invalid mode {mode!r}; use loss, predict or tensor')
