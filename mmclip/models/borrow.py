"""Heads that use a tower owned by their model, without registering it twice.

:class:`~mmclip.models.MMCLIPModel` owns its towers (``visual``, ``text``, ``image_proj``,
``text_proj``, as open_clip's CLIP does); the objectives (AttMIM, EntMLM) are heads that use
them. A head built standalone (``AttMIM(vit, text_dim=…)``) registers the tower itself; a
head built by a model *borrows* it: the tower is reachable as an attribute of the head but is
not one of its sub-modules, so its parameters appear once in the model (state-dict keys
``visual.*``, ``text.*``) and are moved, trained and saved by the owner.
"""

from __future__ import annotations

from torch import nn

__all__ = ["attach_module"]


def attach_module(head: nn.Module, name: str, module: nn.Module, *, borrowed: bool) -> None:
    """Set ``head.<name> = module``, registered as a sub-module unless ``borrowed``.

    Args:
        head: the module that uses ``module``.
        name: attribute name.
        module: the tower.
        borrowed: True when another module (the model) owns and registers ``module``.
    """
    if borrowed:
        # A plain instance attribute: found by normal attribute lookup, invisible to
        # parameters(), state_dict(), to() and train() of the head.
        object.__setattr__(head, name, module)
    else:
        setattr(head, name, module)
