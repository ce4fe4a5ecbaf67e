"""Load the seed's own code (hlb-CIFAR10 `main.py` at 8959293) as a namespace, without running it.

The seed is a script for CUDA: at import it loads (or downloads) CIFAR-10, pads it, and prints a table header;
it builds its network in fp16 and times with CUDA events. For a differential test we execute only its
definitions, in a fresh namespace, with these changes and no others (each is checked to apply exactly):
- skipped: the data-loading block, top-level expression statements (a string and the header print), the
  `if __name__ == "__main__"` block, and the torchvision imports (used only by the skipped download);
- `data` is given: our tensors, in the seed's layout (the seed's own padding statement still runs);
- the literal device string 'cuda' becomes the requested device, and `net.half()` in `make_net` becomes
  `net.to(dtype=...)`, so the seed runs on CPU in fp32 or on CUDA in fp16 as written;
- `hyp['net']['base_depth']` and `hyp['misc']['train_epochs']` are set right after `hyp` is defined (its
  `depths` are computed from them), and the global `batchsize` afterwards (so the seed's learning rates keep
  their 512, as ours do);
- off CUDA, `torch.cuda.synchronize` is a no-op and `torch.cuda.Event` reads the host clock (the seed's timer
  only).
The file is never committed; `git show 8959293:main.py` in a clone of tysam-code/hlb-CIFAR10 gives it.
"""
from __future__ import annotations

import ast
import hashlib
import re
import time
import types
from pathlib import Path

import torch

__all__ = ["SEED_BLOB", "SeedError", "load_seed", "seed_name", "git_blob_id"]

# `git rev-parse 8959293:main.py` in tysam-code/hlb-CIFAR10: the file this loader was written against.
SEED_BLOB = "c26ba51686b1b30ef12ea8b1661c06246a98e6f9"
FETCH = ("get it with `git show 8959293:main.py > .seed/main.py` in a clone of "
         "https://github.com/tysam-code/hlb-CIFAR10")


class SeedError(RuntimeError):
    """The seed file is missing or is not the expected version; the message says how to get it."""


def git_blob_id(content: bytes) -> str:
    """The id git gives a file's content (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Rewrite(ast.NodeTransformer):
    """'cuda' -> the requested device; `net.half()` -> `net.to(dtype=__seed_dtype__)`. Counts what it changed."""

    def __init__(self):
        self.devices = self.halves = 0

    def visit_Constant(self, node: ast.Constant):
        if node.value == "cuda":
            self.devices += 1
            return ast.copy_location(ast.Name("__seed_device__", ast.Load()), node)
        return node

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        f = node.func
        if (isinstance(f, ast.Attribute) and f.attr == "half" and isinstance(f.value, ast.Name)
                and f.value.id == "net" and not node.args):
            self.halves += 1
            dtype = ast.keyword("dtype", ast.Name("__seed_dtype__", ast.Load()))
            return ast.copy_location(ast.Call(ast.Attribute(f.value, "to", ast.Load()), [], [dtype]), node)
        return node


def _skipped(node: ast.stmt) -> bool:
    if isinstance(node, ast.Expr):
        return True
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        return "os.path.exists" in test or "__name__" in test
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
        return any(n.split(".")[0] == "torchvision" for n in names)
    return False


class _HostEvent:
    """Stands in for torch.cuda.Event off CUDA (the seed only times with it): the host clock when recorded, so the
    seed's total_time_seconds off CUDA is its loop's wall time (CPU work is synchronous)."""

    def __init__(self, *args, **kwargs):
        self.at = None

    def record(self, *args, **kwargs):
        self.at = time.perf_counter()

    def elapsed_time(self, other) -> float:
        """Milliseconds from this event to `other`, as torch.cuda.Event.elapsed_time."""
        return 1e3 * (other.at - self.at) if self.at is not None and other.at is not None else 0.0


class _TorchOffCuda:
    """`torch` as the seed sees it off CUDA: everything real but the CUDA timer."""

    cuda = types.SimpleNamespace(Event=_HostEvent, synchronize=lambda *args, **kwargs: None)

    def __getattr__(self, name: str):
        return getattr(torch, name)


def load_seed(path: str | Path, *, data: dict, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32, width: int = 64, epochs: int = 10,
              batch_size: int = 512) -> dict:
    """The seed's globals (make_net, main, NetworkEMA, get_batches, hyp, ...) with its definitions executed
    as described above. `data` = {'train': {'images', 'targets'}, 'eval': {...}}, unpadded; it is padded here
    by the seed's own statement."""
    path = Path(path)
    if not path.is_file():
        raise SeedError(f"the seed's main.py is not at {path}; {FETCH}")
    content = path.read_bytes()
    if git_blob_id(content) != SEED_BLOB:
        raise SeedError(f"{path} is not hlb-CIFAR10 main.py at 8959293 (git blob {git_blob_id(content)}, "
                        f"expected {SEED_BLOB}); {FETCH}")
    tree = ast.parse(content.decode(), filename=str(path))
    rewrite = _Rewrite()
    body = [rewrite.visit(node) for node in tree.body if not _skipped(node)]
    if rewrite.halves != 1 or rewrite.devices < 2:
        raise SeedError(f"{path}: expected one net.half() and the 'cuda' device literals to rewrite, found "
                        f"{rewrite.halves} and {rewrite.devices}")
    device = torch.device(device)
    ns: dict = dict(__name__="hlb_cifar10_seed", __file__=str(path), __seed_dtype__=dtype,
                    __seed_device__=str(device), data=data)
    for node in body:
        module = ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[]))
        exec(compile(module, str(path), "exec"), ns)  # noqa: S102 - the seed's definitions, by design
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "hyp" for t in node.targets):
            ns["hyp"]["net"]["base_depth"] = width
            ns["hyp"]["misc"]["train_epochs"] = epochs
    ns["batchsize"] = batch_size
    if device.type != "cuda":
        ns["torch"] = _TorchOffCuda()
    return ns


# Our parameter/buffer names -> the seed's (net_dict.* inside SpeedyResNet).
_NAME_RULES = (
    (r"^whiten\.", "net_dict.initial_block.whiten."),
    (r"^project\.", "net_dict.initial_block.project."),
    (r"^norm0\.", "net_dict.initial_block.norm."),
    (r"^group(\d)\.se\.down\.", r"net_dict.residual\1.se1."),
    (r"^group(\d)\.se\.up\.", r"net_dict.residual\1.se2."),
    (r"^group(\d)\.((?:conv|norm)\d)\.", r"net_dict.residual\1.\2."),
    (r"^head\.", "net_dict.linear."),
)


def seed_name(ours: str) -> str:
    """The seed's state_dict key for one of ours, e.g. group1.se.down.weight -> net_dict.residual1.se1.weight."""
    for pattern, replacement in _NAME_RULES:
        name, hits = re.subn(pattern, replacement, ours)
        if hits:
            return name
    raise SeedError(f"no seed counterpart for our state entry {ours!r}")
