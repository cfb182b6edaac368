"""Reading and writing network weight files (``<prefix>_net_<name>.pth``), old and new, in one place.

The names: ``net_filename``/``net_path`` (``<prefix>_net_<name>.pth``), ``load_prefix`` (the prefix that
``--epoch``/``--load_iter`` select: ``iter_<N>`` or the epoch), ``available_prefixes`` (what exists for a
network), ``require_net_file`` (the path of a network file to load, or an error that says what is there instead).

``save_weights`` writes a plain CPU state_dict atomically. Every ``*_net_*.pth`` we read goes through
``load_network``: it reads the file with ``weights_only=True`` (a file that would run code when unpickled is
refused), turns checkpoints written by the official code, by older PyTorch versions, or by wrapped models
(DataParallel/DDP ``module.``, ``torch.compile`` ``_orig_mod.``) into a plain state_dict that matches our modules,
and loads it strictly. When keys or shapes still do not match, the error names the flag (``--netG``, ``--norm``,
``--no_dropout``, ``--ngf``, ``--input_nc`` ...) that most likely differs.
"""
from __future__ import annotations

import io
import os
import pickle
import re
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional

import torch
import torch.nn as nn

try:  # POSIX file locks (load_shared); elsewhere reading takes no lock
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

from util.errors import UserError
from util.image_io import file_kind
from util.util import atomic_write_bytes

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
INSTANCE_NORM_STATE = ("running_mean", "running_var", "num_batches_tracked")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file cannot be read or does not fit the network built from the options."""


NET_INFIX = "_net_"
NET_SUFFIX = ".pth"


def net_filename(prefix: str | int, name: str) -> str:
    """``<prefix>_net_<name>.pth``: the file of network ``name`` saved under ``prefix`` (latest, 5, iter_800...)."""
    return f"{prefix}{NET_INFIX}{name}{NET_SUFFIX}"


def net_path(save_dir: str | os.PathLike, prefix: str | int, name: str) -> str:
    """``<save_dir>/<prefix>_net_<name>.pth``."""
    return os.path.join(os.fspath(save_dir), net_filename(prefix, name))


def load_prefix(load_iter: int, epoch: str | int) -> str:
    """The prefix a run loads: ``iter_<load_iter>`` when ``--load_iter`` > 0, else ``--epoch`` (official rule)."""
    return "iter_%d" % load_iter if load_iter > 0 else str(epoch)


def _prefix_order(prefix: str) -> tuple:
    """Sort key: epochs by number, then iter_N by number, then the named ones (best, latest)."""
    if prefix.isdigit():
        return (0, int(prefix), prefix)
    if prefix.startswith("iter_") and prefix[5:].isdigit():
        return (1, int(prefix[5:]), prefix)
    return (2, 0, prefix)


def available_prefixes(save_dir: str | os.PathLike, name: str) -> List[str]:
    """The prefixes with a loadable file of network ``name`` in ``save_dir`` (regular files, or links to one)."""
    folder = os.fspath(save_dir)
    if not os.path.isdir(folder):
        return []
    tail = NET_INFIX + name + NET_SUFFIX
    found = [f[: -len(tail)] for f in os.listdir(folder) if f.endswith(tail) and len(f) > len(tail)
             and not f.startswith(".") and os.path.isfile(os.path.join(folder, f))]
    return sorted(found, key=_prefix_order)


def not_regular_message(path: str, kind: str) -> str:
    """``<path> is a FIFO (named pipe), not a regular checkpoint file: ...``: an entry that must not be opened."""
    if os.path.islink(path) and kind != "a broken symbolic link":
        kind = f"a symbolic link to {os.path.realpath(path)}, {kind}"
    return (f"{path} is {kind}, not a regular checkpoint file: it is not read (opening it could block or never "
            f"end); replace it with the checkpoint file, or choose another checkpoint with --epoch / --load_iter")


def missing_message(save_dir: str | os.PathLike, prefix: str | int, name: str) -> str:
    """Why network ``name``'s file under ``prefix`` cannot be loaded: what is there instead, or what exists."""
    path = net_path(save_dir, prefix, name)
    kind = file_kind(path)
    if kind not in (None, "missing"):
        return not_regular_message(path, kind)
    found = available_prefixes(save_dir, name)
    where = (f"available for {name}: {', '.join(found)} (choose with --epoch / --load_iter)" if found
             else f"no checkpoint of network {name} in {os.fspath(save_dir)} (check --name and --checkpoints_dir)")
    return f"checkpoint file not found: {path}; {where}"


def require_net_file(save_dir: str | os.PathLike, prefix: str | int, name: str) -> str:
    """The path of network ``name``'s file under ``prefix``; ``CheckpointError`` when it is missing or is not a
    regular file (a FIFO, a device, a folder: never opened), listing the prefixes that do exist."""
    path = net_path(save_dir, prefix, name)
    if not os.path.isfile(path):
        raise CheckpointError(missing_message(save_dir, prefix, name))
    return path


def check_regular_files(save_dir: str | os.PathLike, prefix: str | int) -> None:
    """``CheckpointError`` when an entry of checkpoint ``prefix`` (``<prefix>_net_*.pth``, ``<prefix>_train_state
    .pth``) exists but is not a regular file: reading a FIFO blocks, a link to /dev/zero never ends."""
    folder = os.fspath(save_dir)
    if not os.path.isdir(folder):
        return
    head = f"{prefix}{NET_INFIX}"
    for entry in sorted(os.listdir(folder)):
        if (entry.startswith(head) and entry.endswith(NET_SUFFIX)) or entry == f"{prefix}_train_state.pth":
            path = os.path.join(folder, entry)
            kind = file_kind(path)
            if kind is not None:
                raise CheckpointError(not_regular_message(path, kind))


def load_shared(path: str, **kwargs: Any) -> Any:
    """``torch.load`` under a shared lock on the file, so that ``--keep_last`` (training/retention.py) never removes
    a checkpoint while it is being read."""
    with open(path, "rb") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_SH)
        return torch.load(handle, **kwargs)


def read_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Dict[str, torch.Tensor]:
    """Read a state_dict file safely (``weights_only=True``); raise ``CheckpointError`` naming the file."""
    path = os.fspath(path)
    kind = file_kind(path)
    if kind == "missing":
        raise CheckpointError(f"checkpoint file not found: {path}")
    if kind is not None:
        raise CheckpointError(not_regular_message(path, kind))
    try:
        obj = load_shared(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to load {path}: it is not a plain weights file (loading it would need "
                              f"to run arbitrary code; weights_only=True refused it): {exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a PyTorch file?): {exc}") from None
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a network state_dict (a mapping of names to tensors)")
    check_finite(obj, path)
    return obj  # type: ignore[return-value]


def check_finite(state_dict: Mapping[str, torch.Tensor], path: str) -> None:
    """Raise ``CheckpointError`` naming ``path`` and the first tensor holding NaN or Inf (such weights give black
    or noise images without any error), with how many of its values are not finite."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                others = [k for k, t in state_dict.items() if k != key and (t.is_floating_point() or t.is_complex())
                          and not bool(torch.isfinite(t).all())]
                more = f" (and {len(others)} more tensor(s))" if others else ""
                raise CheckpointError(f"{path}: tensor {key} holds {bad} NaN/Inf value(s) of {tensor.numel()}{more}; "
                                      f"the weights are unusable (the run diverged before this save?): load an "
                                      f"earlier checkpoint (--epoch), or retrain with a lower --lr")


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Remove ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes from every key."""
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], net: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """Turn an official/old/wrapped state_dict into one that loads strictly into ``net``.

    Strips ``_metadata`` and wrapper prefixes, drops InstanceNorm running statistics written before PyTorch 0.4
    (our InstanceNorm keeps none), and adds ``num_batches_tracked`` to BatchNorm layers of checkpoints saved
    before it existed (the value PyTorch itself assumes for such files: 0).
    """
    sd = strip_wrapper_prefixes(state_dict)
    modules = dict(net.named_modules())
    own = net.state_dict()
    for key in list(sd):
        prefix, _, attr = key.rpartition(".")
        module = modules.get(prefix)
        if (module is not None and type(module).__name__.startswith("InstanceNorm") and attr in INSTANCE_NORM_STATE
                and getattr(module, attr, None) is None):
            del sd[key]
    for key, value in own.items():
        if key.endswith(".num_batches_tracked") and key not in sd:
            prefix = key[: -len(".num_batches_tracked")]
            if f"{prefix}.running_mean" in sd:
                sd[key] = torch.zeros_like(value)
    return sd


def _resnet_blocks(keys: Iterable[str]) -> Optional[int]:
    """Number of ResNet blocks in a generator key set (None if it is not a ResNet generator)."""
    blocks = {int(m.group(1)) for k in keys for m in [re.match(r"model\.(\d+)\.conv_block\.", k)] if m}
    return len(blocks) if blocks else None


def _unet_depth(keys: Iterable[str]) -> Optional[int]:
    """Number of down-sampling levels of a U-Net key set (None if it is not a U-Net)."""
    depths = [len(re.findall(r"(?=model\.3\.model\.)", k)) for k in keys if k.startswith("model.model.")]
    return max(depths) + 2 if depths else None


def _has_block_dropout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """ResNet blocks with dropout have their second convolution (a 4-D weight) at ``conv_block.6``."""
    return any(re.search(r"conv_block\.6\.weight$", k) and v.dim() == 4 for k, v in state_dict.items())


def _has_batchnorm(keys: Iterable[str]) -> bool:
    """BatchNorm layers have running statistics *and* an affine weight (old InstanceNorm only the former)."""
    keys = set(keys)
    return any(k.endswith(".running_mean") and k[: -len("running_mean")] + "weight" in keys for k in keys)


def _generator_name(keys: List[str]) -> Optional[str]:
    """Guess the ``--netG`` value that produced a generator's key set."""
    blocks = _resnet_blocks(keys)
    if blocks is not None:
        return f"resnet_{blocks}blocks"
    depth = _unet_depth(keys)
    if depth is not None:
        return f"unet_{2 ** depth}"
    return None


def antialias_layout(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, bool]:
    """``no_antialias`` / ``no_antialias_up`` of a network, read from its ``filt`` buffers (CUT's antialiased
    layers: 3x3 kernels downsample, 4x4 kernels upsample; official networks have none)."""
    sizes = {v.shape[-1] for k, v in state_dict.items() if k.endswith(".filt") and v.dim() == 4}
    return {"no_antialias": 3 not in sizes, "no_antialias_up": 4 not in sizes}


def _describe_antialias(layout: Mapping[str, bool]) -> str:
    """'antialiased down/strided up'-style words for a layout."""
    down = "strided downsampling" if layout["no_antialias"] else "antialiased downsampling"
    up = "transposed-conv upsampling" if layout["no_antialias_up"] else "antialiased upsampling"
    return f"{down} and {up}"


def diagnose_mismatch(net: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """Return human hints naming the flag(s) that most likely differ between ``net`` and ``state_dict``."""
    own = net.state_dict()
    mine, theirs = set(own), set(state_dict)
    missing, unexpected = sorted(mine - theirs), sorted(theirs - mine)
    hints: List[str] = []
    g_mine, g_theirs = _generator_name(sorted(mine)), _generator_name(sorted(theirs))
    if g_mine != g_theirs and g_theirs is not None:
        hints.append(f"--netG: the checkpoint is a {g_theirs} generator, the model was built as "
                     f"{g_mine or 'another network'}; pass --netG {g_theirs}")
    elif any(k.startswith("net.") for k in theirs) != any(k.startswith("net.") for k in mine):
        hints.append("--netD: one side is a pixel discriminator (keys net.*), the other is not")
    elif g_mine is None and g_theirs is None and len({k.split('.')[1] for k in mine if k.startswith('model.')}) != \
            len({k.split('.')[1] for k in theirs if k.startswith('model.')}):
        hints.append("--netD / --n_layers_D: the discriminators have different depths")
    aa_theirs, aa_mine = antialias_layout(state_dict), antialias_layout(own)
    if aa_theirs != aa_mine:
        hints.append(f"--no_antialias / --no_antialias_up: the checkpoint has {_describe_antialias(aa_theirs)}, "
                     f"the model was built with {_describe_antialias(aa_mine)} (CUT/FastCUT checkpoints load with "
                     f"--model cut and its default flags)")
    if g_mine == g_theirs or g_theirs is None:
        dropout_theirs = _has_block_dropout(state_dict)
        dropout_mine = _has_block_dropout(own)
        if dropout_theirs != dropout_mine:
            hints.append("--no_dropout: the checkpoint was trained " + ("with" if dropout_theirs else "without") +
                         " dropout in the ResNet blocks; " +
                         ("drop --no_dropout" if dropout_theirs else "add --no_dropout"))
        bn_theirs, bn_mine = _has_batchnorm(theirs), _has_batchnorm(mine)
        if bn_theirs != bn_mine:
            hints.append("--norm: the checkpoint " + ("has" if bn_theirs else "has no") +
                         " BatchNorm statistics; pass --norm " + ("batch" if bn_theirs else "instance (or none)"))
        elif not bn_theirs and any(k.endswith(".bias") for k in unexpected + missing):
            hints.append("--norm: bias terms differ (instance norm convs have biases, --norm none convs do not)")
    common = [k for k, v in own.items() if v.dim() == 4 and k in state_dict]
    if common:
        first, last = own[common[0]].shape, state_dict[common[0]].shape
        if first[1] != last[1] and first[0] == last[0]:
            hints.append(f"--input_nc: the first layer takes {last[1]} channels in the checkpoint, {first[1]} here")
        elif first[0] != last[0]:
            hints.append(f"--ngf/--ndf: the first layer has {last[0]} filters in the checkpoint, {first[0]} here")
        elif own[common[-1]].shape != state_dict[common[-1]].shape:
            hints.append(f"--output_nc: the last layer is {tuple(state_dict[common[-1]].shape)} in the checkpoint, "
                         f"{tuple(own[common[-1]].shape)} here")
    if not hints:
        hints.append("check --netG/--netD, --norm, --no_dropout, --ngf/--ndf, --input_nc/--output_nc and --upsample")
    detail = []
    if missing:
        detail.append(f"missing keys ({len(missing)}), e.g. {', '.join(missing[:3])}")
    if unexpected:
        detail.append(f"unexpected keys ({len(unexpected)}), e.g. {', '.join(unexpected[:3])}")
    return hints + detail


def load_network(net: nn.Module, path: str | os.PathLike, name: str = "",
                 map_location: str | torch.device = "cpu") -> nn.Module:
    """Load ``path`` into ``net`` strictly after conversion; mismatches raise a ``CheckpointError`` with hints."""
    raw = read_weights(path, map_location=map_location)
    sd = convert_state_dict(raw, net)
    own = net.state_dict()
    shapes_ok = all(own[k].shape == v.shape for k, v in sd.items() if k in own)
    if set(sd) != set(own) or not shapes_ok:
        hints = diagnose_mismatch(net, strip_wrapper_prefixes(raw))
        label = f" for network {name}" if name else ""
        raise CheckpointError(f"{os.fspath(path)} does not match the network built from the options{label}:\n  - "
                              + "\n  - ".join(hints))
    net.load_state_dict(sd, strict=True)
    return net


def plain_state_dict(net: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The state_dict to save: unwrapped (no ``module.``/``_orig_mod.``), on the CPU, official key names."""
    return OrderedDict((k, v.detach().cpu().clone()) for k, v in strip_wrapper_prefixes(net.state_dict()).items())


def save_weights(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Save a state_dict atomically: a temporary file in the same folder, fsync, then rename over ``path``."""
    buffer = io.BytesIO()
    torch.save(dict(state_dict) if not isinstance(state_dict, OrderedDict) else state_dict, buffer)
    atomic_write_bytes(os.fspath(path), buffer.getvalue())
