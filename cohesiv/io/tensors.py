"""Reading tensor files (weights, checkpoints) without ever executing pickled code.

``.safetensors`` files are read with safetensors; anything else with
``torch.load(weights_only=True)``, which refuses pickles holding arbitrary Python objects. Every
failure is an :class:`~cohesiv.errors.InputError` naming the file and the problem.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from cohesiv.errors import InputError

#: What the user is told when a file holds pickled objects other than tensors.
UNSAFE_PICKLE = (
    "refused: the file holds pickled Python objects, not only tensors, and loading it could run code; "
    "cohesiv reads weights only (torch.load(weights_only=True) or safetensors). Re-save the plain "
    "state_dict (torch.save(model.state_dict(), ...)) or convert it to .safetensors"
)


def load_tensor_file(path: str | Path, what: str = "weights") -> object:
    """Load a ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` file on the CPU, never running pickled code.

    Args:
        path: the file.
        what: what the file is, for error messages ("weights", "RAFT weights", ...).

    Returns:
        The loaded object (a dict of tensors for safetensors; whatever plain containers of tensors
        and numbers ``torch.load(weights_only=True)`` returns otherwise).

    Raises:
        InputError: missing, unreadable, truncated or unsafe file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such {what} file")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        unsafe = next((ln for ln in lines if "GLOBAL" in ln), None)
        if unsafe is not None:  # torch's weights-only unpickler met a Python object it will not build
            raise InputError(path, f"{what}: {UNSAFE_PICKLE} ({unsafe[:160]})") from None
        noise = ("Weights only load failed", "Please file an issue", "Check the documentation")
        detail = next((ln for ln in lines if not ln.startswith(noise)), lines[0] if lines else "")
        raise InputError(path, f"cannot read {what} (not a PyTorch weights file: {detail[:160]})") from None
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise InputError(path, f"cannot read {what} ({type(e).__name__}: {first})") from None
