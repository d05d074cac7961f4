# Copyright (c) mmbinpc contributors. All rights reserved.
"""BinaryDistiller: a frozen FP32 teacher guiding a binary student (KDR).

``L_total = λ · L_DS + (1 − λ) · L_CE + η · L_reg`` (the paper's Eq. 12):

* ``L_DS`` — soft targets at temperature ``T``
  (:func:`mmbinpc.models.losses.soft_target_loss`), per point for
  segmentors (points labelled ``ignore_index`` left out);
* ``L_CE`` — the student's own task loss (its ``*loss_ce`` terms);
* ``L_reg`` — a Table 1 norm of student-minus-teacher pooling outputs, the
  sites paired by module name
  (:class:`~mmbinpc.models.losses.PoolingNormLoss`).

Works for classifiers with ``loss_and_logits`` (``PointClassifier``) and for
mmdet3d ``EncoderDecoder3D`` segmentors (logits taken from ``decode_head``).

Further terms come from config: ``extra_losses=[dict(type=...), ...]`` builds
each from ``MODELS`` and calls it with a :class:`DistillOutputs` (logits of
both models, the data samples and, if it sets ``needs_pooling = True``, the
paired pooling outputs); it returns a scalar (logged as its ``loss_name``)
or a dict of ``loss_*`` terms. A loss that sets ``needs_teacher = False``
does not make the distiller run the teacher.
"""
import copy
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmdet3d.registry import MODELS
from mmengine.logging import MessageHub, MMLogger, print_log
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmbinpc.binary.aggregation import PointPool, ema_offset
from ..layers import use_pooled_sa_modules
from ..losses import PoolingNormLoss, SoftTargetLoss, check_norm
from .distill_outputs import DistillOutputs, named_terms
from .recorders import OutputRecorder
from .teacher_source import load_model_config, load_teacher, resolve_checkpoint

DISTILL_DEFAULTS = dict(
    temperature=2.0,
    lambda_=0.5,
    eta=0.1,
    reg_norm='1',
    pairs='auto',
    reg_reduction='mean',
    align_ema=True)


def max_aligned(site: PointPool, x: Tensor, out: Tensor) -> Tensor:
    """A pooling output with EMA's constant shift δ*(n) added back.

    EMA pools ``max − δ*(n)``; the shift centres the max for the sign
    function and is not an error to be regularised away. L_reg therefore
    compares pooled values before the shift (``max`` for ``'ema'``, the max
    half of ``'ema+avg'``), so a student with EMA and a teacher with max
    pooling are compared like for like.

    Args:
        site (PointPool): The pooling module.
        x (Tensor): Its input.
        out (Tensor): Its output.

    Returns:
        Tensor: ``out`` for non-EMA modes, else the unshifted output.
    """
    if site.mode not in ('ema', 'ema+avg'):
        return out
    delta = ema_offset(x.shape[site.dim])
    if site.mode == 'ema':
        return out + delta
    half = out.shape[site.cat_dim] // 2
    return torch.cat([
        out.narrow(site.cat_dim, 0, half) + delta,
        out.narrow(site.cat_dim, half, half)
    ],
                     dim=site.cat_dim)


def _pool_sites(model: nn.Module) -> Dict[str, PointPool]:
    """Pooling sites (PointPool modules) of a model, in model order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, PointPool)}


def _site_modes(sites: Dict[str, PointPool]) -> str:
    """'name (mode), ...' of pooling sites, or 'none'."""
    return ', '.join(f'{n} ({m.mode})' for n, m in sites.items()) or 'none'


def _attach_pooling(model: nn.Module) -> None:
    """Give mmdet3d pooling sites a PointPool (no-op before helper lands)."""
    try:
        from mmbinpc.binary import attach_pooling
    except ImportError:  # pragma: no cover - binary helper not installed
        return
    modes = {n: m.mode for n, m in _pool_sites(model).items()}
    attach_pooling(model, mode='max')
    for name, site in _pool_sites(model).items():
        if name in modes:  # keep the configured aggregation of known sites
            site.mode = modes[name]


@MODELS.register_module()
class BinaryDistiller(BaseModel):
    """Teacher-student wrapper training a binary student with KDR.

    Args:
        teacher (dict | str): Teacher model config, or a config file path
            (``mmdet3d::`` paths included) whose ``model`` is used.
        teacher_ckpt (str): Teacher checkpoint file or work directory (best
            checkpoint, else latest).
        student (dict, optional): Student model config. Defaults to the
            teacher's. A ``binarize`` key inside it is honoured like the
            ``binarize`` argument (give one or the other).
        binarize (dict, optional): Keyword arguments of
            :func:`mmbinpc.binarize` applied to the student, e.g.
            ``dict(method='lsr', aggregation='ema')``. None keeps the student
            FP32 (useful for FP-to-FP distillation).
        init_student_from_teacher (bool): Copy the teacher's weights (by name
            and shape) into the student before binarizing. Defaults to True.
        distill (dict): ``temperature`` (T, default 2.0), ``lambda_`` (λ,
            0.5), ``eta`` (η, 0.1), ``reg_norm`` ('1'), ``pairs`` ('auto':
            every max/EMA site both models share, or a list of site names /
            glob patterns), ``reg_reduction``
            ('mean' over sites, or 'sum') and ``align_ema`` (True: compare
            EMA sites before their constant shift, see :func:`max_aligned`).
        extra_losses (list[dict], optional): Configs of further loss
            modules (registered in ``MODELS``), called with a
            :class:`DistillOutputs` per batch (see the module doc).
        save_teacher (bool): Keep the teacher's weights in saved
            checkpoints. Defaults to False (it is reloaded from
            ``teacher_ckpt``).
        data_preprocessor (dict, optional): Defaults to the student's.
        init_cfg (dict, optional): Unused; weights come from the teacher.
    """

    # The generic ``binarize=`` config key (mmbinpc.binary.convert) would
    # binarize the whole model; here the key is this class's own argument.
    handles_binarize_key = True

    def __init__(self,
                 teacher: Union[dict, str],
                 teacher_ckpt: Optional[str] = None,
                 student: Optional[dict] = None,
                 binarize: Optional[dict] = None,
                 init_student_from_teacher: bool = True,
                 distill: Optional[dict] = None,
                 extra_losses: Optional[Sequence[dict]] = None,
                 save_teacher: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        teacher_cfg, self.teacher_config_path = load_model_config(teacher)
        student_cfg, bin_cfg = self.student_config(teacher_cfg, student,
                                                   binarize)
        if data_preprocessor is None:
            data_preprocessor = student_cfg.get(
                'data_preprocessor', teacher_cfg.get('data_preprocessor'))
        if isinstance(data_preprocessor, dict):  # resolve in mmdet3d scope
            data_preprocessor = MODELS.build(copy.deepcopy(data_preprocessor))
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.distill_cfg = self._check_distill(distill)
        self.save_teacher = save_teacher
        logger = MMLogger.get_current_instance()

        # Teacher: built, loaded once, frozen, always in eval mode.
        resolve_checkpoint(teacher_ckpt, self.teacher_config_path)
        # (both models with mmbinpc's pooled SA modules: pooling sites)
        self.teacher = MODELS.build(use_pooled_sa_modules(teacher_cfg))
        self.teacher_ckpt = load_teacher(self.teacher, teacher_ckpt,
                                         self.teacher_config_path)
        _attach_pooling(self.teacher)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()

        # Student: FP32 build, optional copy of the teacher, then binarize.
        self.student = MODELS.build(use_pooled_sa_modules(student_cfg))
        if init_student_from_teacher:
            self._copy_teacher_into_student(logger)
        elif hasattr(self.student, 'init_weights'):
            self.student.init_weights()
        self.binarize_report = None
        if bin_cfg is not None:
            from mmbinpc.binary import binarize as binarize_model
            self.binarize_report = binarize_model(self.student, **bin_cfg)
            print_log(
                f'binary student:\n{self.binarize_report}', logger=logger)
        else:
            _attach_pooling(self.student)

        # segmentors: logits read from decode_head.conv_seg (mmdet3d decode
        # heads call self.forward() directly, so no hook on the head fires),
        # and the KD term leaves out the ignored label
        self._seg_logits = None
        ignore = None
        if self._is_segmentor(self.student):
            self._seg_logits = OutputRecorder(self.student,
                                              ['decode_head.conv_seg'])
            ignore = self.student.decode_head.ignore_index
        # λ and η weight these in loss(); the temperature is the KD term's
        self.kd_loss = SoftTargetLoss(
            self.distill_cfg['temperature'], ignore_index=ignore)
        self.reg_loss = PoolingNormLoss(
            self.distill_cfg['reg_norm'],
            reduction=self.distill_cfg['reg_reduction'])
        self.extra_losses = nn.ModuleList(
            MODELS.build(copy.deepcopy(dict(c))) for c in extra_losses or ())
        self.pair_names = self._select_pairs(self.distill_cfg['pairs'])
        # the paired sites' outputs (EMA's shift added back when align_ema)
        align = max_aligned if self.distill_cfg['align_ema'] else None
        self._pooled = {
            role: OutputRecorder(model, self.pair_names, align)
            for role, model in (('student', self.student), ('teacher',
                                                            self.teacher))
        }
        self._steps = 0
        self.eval_teacher = False  # predict with the teacher (TeacherValHook)
        self._register_state_dict_hook(self._drop_teacher_state)
        self.register_load_state_dict_post_hook(self._allow_missing_teacher)

    # ------------------------------------------------------------ building
    @staticmethod
    def student_config(
            teacher_cfg: dict,
            student: Optional[dict] = None,
            binarize: Optional[dict] = None) -> Tuple[dict, Optional[dict]]:
        """Split the student config into an FP32 model config and binarize.

        Args:
            teacher_cfg (dict): The teacher model config.
            student (dict, optional): Student config (default: teacher's).
            binarize (dict, optional): The distiller's ``binarize``.

        Returns:
            tuple[dict, dict | None]: FP32 student config and the binarize
            keyword arguments.
        """
        cfg = copy.deepcopy(
            dict(student if student is not None else teacher_cfg))
        inner = cfg.pop('binarize', None)
        if inner is not None and binarize is not None and student is not None:
            raise ValueError(
                'binarize is given twice (in `student` and in the '
                'distiller); keep one of them')
        bin_cfg = binarize if binarize is not None else inner
        return cfg, (dict(bin_cfg) if bin_cfg is not None else None)

    @staticmethod
    def _check_distill(distill: Optional[dict]) -> dict:
        cfg = dict(DISTILL_DEFAULTS)
        unknown = set(distill or {}) - set(cfg)
        if unknown:
            raise ValueError(f'unknown distill keys {sorted(unknown)}; valid '
                             f'keys: {sorted(cfg)}')
        cfg.update(distill or {})
        if not 0.0 <= float(cfg['lambda_']) <= 1.0:
            raise ValueError(f'distill.lambda_ must be in [0, 1], got '
                             f'{cfg["lambda_"]}')
        if float(cfg['eta']) < 0:
            raise ValueError(f'distill.eta must be >= 0, got {cfg["eta"]}')
        if float(cfg['temperature']) <= 0:
            raise ValueError('distill.temperature must be > 0, got '
                             f'{cfg["temperature"]}')
        cfg['reg_norm'] = check_norm(cfg['reg_norm'])
        return cfg

    def _copy_teacher_into_student(self, logger: MMLogger) -> None:
        t_state = self.teacher.state_dict()
        s_state = self.student.state_dict()
        copied = {
            k: v
            for k, v in t_state.items()
            if k in s_state and s_state[k].shape == v.shape
        }
        self.student.load_state_dict(copied, strict=False)
        skipped = len(s_state) - len(copied)
        print_log(
            f'student initialised from the teacher: {len(copied)} '
            f'tensors copied, {skipped} left as built',
            logger=logger)

    def _select_pairs(self, pairs: Union[str, Sequence[str]]) -> List[str]:
        s_sites, t_sites = _pool_sites(self.student), _pool_sites(self.teacher)
        common = [n for n in s_sites if n in t_sites]
        if pairs == 'auto':
            # L_reg matches max-type aggregations (max, EMA, max+avg); a
            # plain average (e.g. PointCNN's classifier) is not one
            common = [n for n in common if s_sites[n].mode != 'avg']
            if not common and float(self.distill_cfg['eta']) > 0:
                raise ValueError(
                    'pairs=auto found no max/EMA pooling site present in '
                    f'both models (student sites: '
                    f'{_site_modes(s_sites)}; teacher sites: '
                    f'{_site_modes(t_sites)}), so there is no pooling '
                    'output for L_reg to match (e.g. PointCNN aggregates '
                    'with X-Conv). Set distill.eta=0 (soft targets only, '
                    'the paper\'s +KD), or name sites in distill.pairs')
            return common
        if isinstance(pairs, str):
            pairs = [pairs]
        chosen: List[str] = []
        for pattern in pairs:
            hits = [n for n in common if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise ValueError(
                    f'distill.pairs entry {pattern!r} matches no pooling site '
                    f'present in both models; student sites: '
                    f'{list(s_sites) or "none"}; teacher sites: '
                    f'{list(t_sites) or "none"}')
            chosen += [h for h in hits if h not in chosen]
        return chosen

    def init_weights(self) -> None:
        """Weights are set at construction (teacher checkpoint, student copy).

        Overridden so that the Runner's ``init_weights`` call does not
        re-initialise them.
        """

    def train(self, mode: bool = True) -> 'BinaryDistiller':
        """Set the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    # --------------------------------------------------------- checkpoints
    def _drop_teacher_state(self, module, state_dict, prefix, local_metadata):
        if self.save_teacher:
            return state_dict
        drop = prefix + 'teacher.'
        for key in [k for k in state_dict if k.startswith(drop)]:
            del state_dict[key]
        return state_dict

    @staticmethod
    def _allow_missing_teacher(module, incompatible_keys) -> None:
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if not k.startswith('teacher.')]

    # ------------------------------------------------------------- forward
    def forward(self,
                inputs: dict,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """Dispatch on ``mode`` ('loss', 'predict', 'tensor')."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        model = self.teacher if self.eval_teacher else self.student
        if mode == 'predict':
            return model.predict(inputs, data_samples)
        if mode == 'tensor':
            return model._forward(inputs, data_samples)
        raise RuntimeError(f'invalid mode {mode!r}; use loss, predict or '
                           'tensor')

    @staticmethod
    def _is_segmentor(model: nn.Module) -> bool:
        return not hasattr(model, 'loss_and_logits') and hasattr(
            model, 'decode_head')

    def _student_loss_and_logits(self, inputs: dict,
                                 data_samples: list) -> Tuple[dict, Tensor]:
        student = self.student
        if hasattr(student, 'loss_and_logits'):
            return student.loss_and_logits(inputs, data_samples)
        if self._seg_logits is not None:
            with self._seg_logits.recording():
                losses = student.loss(inputs, data_samples)
            logits = self._seg_logits.outputs['decode_head.conv_seg']
            if not logits:
                raise RuntimeError('the student decode head produced no '
                                   'logits during loss()')
            return losses, logits[0]
        raise TypeError(
            f'{type(student).__name__} has neither loss_and_logits() nor a '
            'decode_head; BinaryDistiller needs one of them to read the '
            "student's logits")

    def _labels(self, data_samples: list) -> Optional[Tensor]:
        """Segmentation masks (for ``kd_loss``'s ignore index), else None."""
        if self._seg_logits is None:
            return None
        masks = [s.gt_pts_seg.pts_semantic_mask for s in data_samples]
        return torch.stack(masks)

    def _step(self) -> int:
        hub = MessageHub.get_current_instance()
        it = hub.get_info('iter')
        return int(it) if it is not None else self._steps

    def _split_task_losses(self, losses: dict) -> Tuple[List[Tensor], dict]:
        task_keys = [k for k in losses if k.endswith('loss_ce')]
        if not task_keys:
            task_keys = [k for k in losses if 'loss' in k]
        task, rest = [], {}
        for key, value in losses.items():
            if key in task_keys:
                task += list(value) if isinstance(value,
                                                  (list, tuple)) else [value]
            else:
                rest[key] = value
        return task, rest

    def loss(self, inputs: dict, data_samples: list) -> Dict[str, Tensor]:
        """KDR losses of one batch.

        Returns:
            dict[str, Tensor]: ``loss_ds`` (λ·L_DS), ``loss_ce``
            ((1−λ)·L_CE), ``loss_reg`` (η·L_reg) and the student's other
            losses unchanged.
        """
        cfg = self.distill_cfg
        lam, eta = float(cfg['lambda_']), float(cfg['eta'])
        extra_teacher = any(
            getattr(m, 'needs_teacher', True) for m in self.extra_losses)
        extra_pooling = any(
            getattr(m, 'needs_pooling', False) for m in self.extra_losses)
        use_teacher = lam > 0 or eta > 0 or extra_teacher
        use_reg = eta > 0 and len(self.pair_names) > 0
        record = use_reg or extra_pooling
        t_logits = None
        with self._pooled['teacher'].recording(record), \
                self._pooled['student'].recording(record):
            if use_teacher:
                with torch.no_grad():
                    t_logits = self.teacher._forward(inputs, data_samples)
            s_losses, s_logits = self._student_loss_and_logits(
                inputs, data_samples)
        task, rest = self._split_task_losses(s_losses)
        loss_ce = sum(t.mean() for t in task) if task else s_logits.sum() * 0
        out = {'loss_ce': (1.0 - lam) * loss_ce}
        if lam > 0:
            out['loss_ds'] = lam * self.kd_loss(s_logits, t_logits,
                                                self._labels(data_samples))
        else:
            out['loss_ds'] = s_logits.sum() * 0.0
        pooled = (use_reg or extra_pooling) and len(self.pair_names) > 0
        s_outs, t_outs, names = (
            self._paired_outputs() if pooled else ([], [], []))
        if use_reg:
            out['loss_reg'] = eta * self.reg_loss(s_outs, t_outs, names)
        else:
            out['loss_reg'] = s_logits.sum() * 0.0
        if len(self.extra_losses):
            outputs = DistillOutputs(s_logits, t_logits, data_samples, names,
                                     s_outs, t_outs)
            for module in self.extra_losses:
                for key, value in named_terms(module, module(outputs)).items():
                    if key in out:
                        raise KeyError(
                            f'{type(module).__name__} logs {key!r}, which '
                            'another loss term already uses; give it a '
                            'different loss_name')
                    out[key] = value
        for recorder in self._pooled.values():
            recorder.clear()
        out.update(rest)
        self._check_finite(out)
        self._steps += 1
        return out

    def pooling_outputs(
            self, inputs: dict, data_samples: list
    ) -> Tuple[List[str], List[Tensor], List[Tensor]]:
        """The paired pooling outputs that L_reg compares, for one batch.

        Runs the teacher and the student (in its current mode, without
        gradients) and returns what :meth:`loss` would hand the regulariser
        (EMA's shift added back when ``align_ema``). For analysis tools
        (``tools/analysis/pooling_match.py``).

        Args:
            inputs (dict): Preprocessed inputs, as for :meth:`loss`.
            data_samples (list): Their data samples.

        Returns:
            tuple: ``(names, student_outputs, teacher_outputs)``, one entry
            per paired site and call.
        """
        with self._pooled['teacher'].recording(), \
                self._pooled['student'].recording(), torch.no_grad():
            self.teacher._forward(inputs, data_samples)
            self.student._forward(inputs, data_samples)
        s_outs, t_outs, names = self._paired_outputs()
        for recorder in self._pooled.values():
            recorder.clear()
        return names, s_outs, t_outs

    def _paired_outputs(self) -> Tuple[List[Tensor], List[Tensor], List[str]]:
        s_rec = self._pooled['student'].outputs
        t_rec = self._pooled['teacher'].outputs
        s_outs, t_outs, names = [], [], []
        for name in self.pair_names:
            s_list, t_list = s_rec.get(name, []), t_rec.get(name, [])
            if len(s_list) != len(t_list) or not s_list:
                raise RuntimeError(
                    f'pooling site {name!r} ran {len(s_list)} time(s) in the '
                    f'student but {len(t_list)} time(s) in the teacher; the '
                    'two models must pool at the same sites')
            for i, (s, t) in enumerate(zip(s_list, t_list)):
                if s.shape != t.shape:
                    raise ValueError(
                        f'pooling site {name!r}: student output shape '
                        f'{tuple(s.shape)} differs from teacher output shape '
                        f'{tuple(t.shape)}; pair only sites with matching '
                        'shapes (distill.pairs) or use the same architecture')
                s_outs.append(s)
                t_outs.append(t)
                names.append(name if len(s_list) == 1 else f'{name}[{i}]')
        return s_outs, t_outs, names

    def _check_finite(self, losses: Dict[str, Tensor]) -> None:
        for name, value in losses.items():
            if not isinstance(value, Tensor) or 'loss' not in name:
                continue
            if not bool(torch.isfinite(value.detach()).all()):
                bad = value.detach().float().mean().item()
                raise FloatingPointError(
                    f'BinaryDistiller: {name} became {bad} at training step '
                    f'{self._step()} (λ={self.distill_cfg["lambda_"]}, '
                    f'η={self.distill_cfg["eta"]}, T='
                    f'{self.distill_cfg["temperature"]}, reg_norm='
                    f'{self.distill_cfg["reg_norm"]!r}); training stopped. '
                    'Lower the learning rate or the weight of that term.')

    def __repr__(self) -> str:  # keep logs short: the two models are long
        return (f'{type(self).__name__}(teacher={type(self.teacher).__name__}'
                f', student={type(self.student).__name__}, distill='
                f'{self.distill_cfg}, pairs={self.pair_names})')
