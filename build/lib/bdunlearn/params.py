"""Which parameters a fine-tune trains: comma-separated name prefixes or fnmatch globs (``visual``,
``visual.transformer.resblocks.*.attn.*``); a pattern that selects nothing is a one-line error."""

from __future__ import annotations

from fnmatch import fnmatchcase

from torch import nn

from bdunlearn.errors import UserError


def parameter_patterns(spec: str) -> list[str]:
    """The comma-separated patterns of a ``params`` setting ("" or only commas: every parameter)."""
    return [p.strip() for p in spec.split(",") if p.strip()] or [""]


def selects(name: str, patterns: list[str]) -> bool:
    """Whether a parameter name is chosen: a pattern with a wildcard (``*?[``) is an ``fnmatch`` glob over the
    whole name, any other pattern a name prefix ("visual" is the image tower)."""
    return any(fnmatchcase(name, p) if any(c in p for c in "*?[") else name.startswith(p) for p in patterns)


def selected_names(model: nn.Module, spec: str, key: str = "params") -> list[str]:
    """Names of the parameters ``spec`` selects (comma-separated prefixes or globs, see ``selects``); a spec that
    selects nothing is a UserError naming ``key``."""
    patterns = parameter_patterns(spec)
    names = [name for name, _ in model.named_parameters() if selects(name, patterns)]
    if not names:
        raise UserError(
            f"{key}={spec!r} selects no parameter; use a name prefix such as 'visual' (image tower) or '' (all), "
            "or globs such as 'visual.transformer.resblocks.*.attn.*'"
        )
    return names


def trainable_parameters(model: nn.Module, spec: str) -> dict[str, nn.Parameter]:
    """Unfreeze the parameters ``spec`` selects (see ``selected_names``), freeze the rest."""
    names = set(selected_names(model, spec))
    chosen = {}
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
        if param.requires_grad:
            chosen[name] = param
    return chosen
