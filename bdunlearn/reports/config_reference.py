"""The configuration reference (``docs/configuration.md``): every key of the schema, its type, default and meaning.

It is generated from the dataclasses themselves (:class:`~bdunlearn.config.schema.RunConfig` and each plug-in's
``Config``), so it cannot drift from the code. A key's description is the comment written beside it in the
source: the comment on the field's line (with any comment-only lines below it indented further), else the
comment-only lines just above it; a field that overrides an inherited one without a comment keeps the parent's.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import tokenize
import typing
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from bdunlearn.config import schema
from bdunlearn.config.files import CONFIG_DIR

REGENERATE = "python scripts/config_reference.py"
PLUGIN_SECTIONS = ("attack", "defense", "inversion")


@dataclasses.dataclass(frozen=True)
class Key:
    key: str
    type: str
    default: str
    help: str


@functools.cache
def _comments(cls: type) -> dict[str, str]:
    """Field name → the comment that describes it in ``cls``'s own source (no inheritance)."""
    source = inspect.getsource(cls)
    comments: dict[int, str] = {}  # line → text
    raw: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
            raw[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    body = ast.parse(source).body[0]  # plug-in and schema Configs are module-level classes
    fields = [n for n in body.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    beside = {n.target.id: [comments[i] for i in range(n.lineno, n.end_lineno + 1) if i in comments] for n in fields}
    continued: dict[str, list[str]] = {}
    for node in fields:  # a comment beside a field goes on in comment-only lines indented inside the comment
        line = node.end_lineno + 1
        while beside[node.target.id] and line in raw and line not in code_lines and raw[line].startswith("#  "):
            continued.setdefault(node.target.id, []).append(comments[line])
            line += 1
    taken = {n.end_lineno + 1 + i for n in fields for i in range(len(continued.get(n.target.id, [])))}
    found = {}
    for node in fields:
        text = beside[node.target.id] + continued.get(node.target.id, [])
        line = node.lineno - 1
        while not text and line in comments and line not in code_lines and line not in taken:
            text = [comments[line]]
            line -= 1
            while line in comments and line not in code_lines and line not in taken:
                text.insert(0, comments[line])
                line -= 1
        if text:
            found[node.target.id] = " ".join(t for t in text if t)
    return found


def field_help(cls: type, name: str) -> str:
    """The description of ``cls``'s field ``name``: its own comment, else the nearest parent's."""
    for klass in cls.__mro__:
        if dataclasses.is_dataclass(klass) and name in inspect.get_annotations(klass):
            text = _comments(klass).get(name)
            if text:
                return text
    return ""


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return MISSING


def _format(value: Any) -> str:
    if value == MISSING:
        return "*from the group option*"
    if isinstance(value, list) and len(value) > 6:
        return f"`[{value[0]}, {value[1]}, …, {value[-1]}]` ({len(value)} values)"
    return f"`{'null' if value is None else str(value).lower() if isinstance(value, bool) else value}`"


def _type(f: dataclasses.Field) -> str:
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    optional = text.startswith("Optional[") and text.endswith("]")
    return f"`{text[9:-1]}` or null" if optional else f"`{text}`"


def _section_type(cls: type, f: dataclasses.Field) -> type | None:
    """The dataclass a field holds (``model: ModelConfig = MISSING`` too), or None for a leaf."""
    hint = typing.get_type_hints(cls).get(f.name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def keys(cls: type, prefix: str = "") -> list[Key]:
    """Every leaf key of the dataclass ``cls`` (nested dataclasses flattened to dotted keys)."""
    rows = []
    for f in dataclasses.fields(cls):
        value = _default(f)
        if _section_type(cls, f):
            rows.extend(keys(_section_type(cls, f), f"{prefix}{f.name}."))
        elif not (f.name in PLUGIN_SECTIONS and cls is schema.RunConfig):
            rows.append(Key(prefix + f.name, _type(f), _format(value), field_help(cls, f.name)))
    return rows


def _sections(cls: type) -> list[tuple[str, str, type]]:
    """(section key, its description, its dataclass) for the nested sections of ``cls``."""
    return [(f.name, field_help(cls, f.name), _section_type(cls, f)) for f in dataclasses.fields(cls) if _section_type(cls, f)]


def plugin_configs() -> dict[str, dict[str, type]]:
    from bdunlearn.plugins import registry

    return {group: {name: plugin.Config for name, plugin in sorted(options.items())} for group, options in registry().groups().items()}


def all_keys() -> list[Key]:
    """The run's keys and every plug-in option's (as ``attack.patch_size`` etc., once per option)."""
    rows = keys(schema.RunConfig)
    for group, options in plugin_configs().items():
        for config in options.values():
            rows.extend(keys(config, f"{group}."))
    return rows


def _table(rows: list[Key], strip: str = "") -> list[str]:
    out = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for row in rows:
        out.append(f"| `{row.key.removeprefix(strip)}` | {row.type} | {row.default} | {row.help.replace('|', '&#124;')} |")
    return out + [""]


def _doc(cls: type) -> str:
    return " ".join(inspect.getdoc(cls).split()) if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(") else ""


def group_options() -> dict[str, list[str]]:
    """Config group → its options: YAML files under ``conf/`` and the registered plug-ins."""
    groups = {p.name: sorted(f.stem for f in p.glob("*.yaml")) for p in sorted(CONFIG_DIR.iterdir()) if p.is_dir() and p.name != "hydra"}
    groups.update({group: list(options) for group, options in plugin_configs().items()})
    return dict(sorted(groups.items()))


def render() -> str:
    """The whole Markdown page."""
    lines = [
        "# Configuration reference",
        "",
        (f"<!-- generated from bdunlearn/config/schema.py and the plug-ins' Config dataclasses by `{REGENERATE}`;"
         " do not edit by hand -->"),
        "",
        ("Every key, its type, its default and what it means, generated from the schema "
        "(`bdunlearn/config/schema.py`) and each plug-in's `Config` dataclass, so it matches the code. "
        "Set any key on the command line (`bdunlearn dataset.root=/data seed=1`); `bdunlearn --cfg job [overrides]` "
        "prints the composed config. A default shown as *from the group option* is set by the chosen option's "
        "YAML file under `bdunlearn/conf/<group>/`."),
        "",
        "## Config groups",
        "",
        "| group | options |",
        "| --- | --- |",
        *[f"| `{g}` | {', '.join(f'`{o}`' for o in opts)} |" for g, opts in group_options().items()],
        "",
        "## Run keys",
        "",
        *_table([k for k in keys(schema.RunConfig) if "." not in k.key]),
    ]
    for name, text, cls in _sections(schema.RunConfig):
        lines += [f"## `{name}`", "", " ".join(x for x in (text, _doc(cls)) if x), "", *_table(keys(cls, f"{name}."))]
    for group, options in plugin_configs().items():
        lines += [f"## `{group}`", "", f"Choose with `{group}=<option>`; each option's keys are its `Config` dataclass.", ""]
        for option, config in options.items():
            lines += [f"### `{group}={option}`", "", _doc(config), "", *_table(keys(config, f"{group}."))]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"


def write(path: str | Path) -> Path:
    from bdunlearn.atomic import write_text_atomic

    write_text_atomic(Path(path), render())
    return Path(path)
