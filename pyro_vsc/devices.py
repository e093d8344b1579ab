"""The device a command runs on, from its ``device`` setting (training, evaluation, figures)."""

import torch


def select_device(name):
    """``auto`` picks CUDA when available; anything else is passed to ``torch.device`` and must
    be usable here: ``ValueError`` with one line otherwise (``mps`` on a machine without it, a
    CUDA index beyond the devices, ``meta``, a misspelt name)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={name} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={name} requested but CUDA is not available; use device=cpu or auto")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device={name} requested but this machine has {count} CUDA device(s); "
                             f"use cuda:0 … cuda:{count - 1}, cuda or auto")
    elif device.type != "cpu":
        try:  # a tensor made there and read back: what training needs of a device
            torch.ones(1, device=device).add(1).cpu()
        except Exception as error:  # noqa: BLE001 (torch raises several types for unusable devices)
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ValueError(f"device={name} cannot be used on this machine ({reason}); use auto, "
                             "cpu, cuda or cuda:N") from None
    return device
