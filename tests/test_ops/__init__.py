# Copyright (c) mmbinpc contributors. All rights reserved.
