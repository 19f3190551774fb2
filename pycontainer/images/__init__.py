"""Images: a content-addressed OCI store, safe layer unpacking, and the
overlay snapshots containers run on.  See docs/images.md."""

from ._apply import apply_image, merge_env
from ._builtin import BUILTIN, builtin_image
from ._changes import changes, commit
from ._copy import copy_layers, overlay_supported, shift_ownership
from ._progress import Progress, ProgressBars
from ._store import Image, ImageConfig, ImageStore, host_platform, local_ref, normalize_ref
from ._unpack import LayerLimits, UnpackResult, remove_tree, unpack_layer

__all__ = [
    "BUILTIN",
    "builtin_image",
    "changes",
    "commit",
    "copy_layers",
    "overlay_supported",
    "shift_ownership",
    "apply_image",
    "merge_env",
    "Image",
    "ImageConfig",
    "ImageStore",
    "LayerLimits",
    "Progress",
    "ProgressBars",
    "UnpackResult",
    "host_platform",
    "local_ref",
    "normalize_ref",
    "remove_tree",
    "unpack_layer",
]
