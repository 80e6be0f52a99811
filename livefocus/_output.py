"""What livefocus writes, and the one check every writer makes before it writes.

Livefocus marks everything it writes, so that ``overwrite`` can never remove anything else:

- a **store** (stream, ``label`` and ``simulate`` output) is a Zarr v3 group whose root
  ``zarr.json`` has a ``livefocus`` attribute (a JSON object holding at least ``status``);
- any other **folder** (a model folder) holds a ``.livefocus`` marker file (JSON);
- a **file** (an exported ONNX model) is recognised by the writer itself (``owned=``);
- a **side file** (a figure, a screenshot, a JSON summary) carries :data:`WRITER`: PNG figures
  in their ``Software`` text, JSON files as the object's ``writer``; :func:`check_file_output`
  lets it replace only such a file, and never one inside an input or an output.

:func:`prepare_output` (:func:`check_output`, then removal) refuses an existing output unless
``overwrite`` is given, refuses even then anything without the marker or holding anything
livefocus did not write (:func:`foreign_entry`: a user's notes put in a store), refuses an
output that is, holds or lies inside one of the inputs, checks that the parent folder is
writable, and only then removes the old output.

A store's ``status`` is a :data:`livefocus._vocab.RunState`: ``running`` while it is written,
then ``complete``, ``interrupted`` or ``error: ...``; :func:`check_complete` is what readers
call. This module is a leaf: it imports nothing from livefocus but the vocabulary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from livefocus._vocab import run_state

__all__ = [
    "FOLDER_FILES",
    "MARKER",
    "NODES_KEY",
    "OS_LITTER",
    "STORE_KEY",
    "WRITER",
    "check_complete",
    "check_file_output",
    "check_output",
    "check_suffix",
    "creating",
    "foreign_entry",
    "is_livefocus_file",
    "is_livefocus_output",
    "live_writer",
    "made_elsewhere",
    "output_kind",
    "prepare_output",
    "remove_partial",
    "store_nodes",
    "store_status",
    "write_json",
    "write_marker",
    "writer_stamp",
]

#: Marker file of the folders livefocus writes that are not Zarr stores.
MARKER = ".livefocus"
#: The root attribute of every livefocus store.
STORE_KEY = "livefocus"
#: What livefocus's side files carry: a PNG's ``Software`` text, a JSON object's ``writer``.
WRITER = "livefocus"
#: The PNG signature, and how far into a PNG its ``Software`` text is looked for.
_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_HEAD = 1 << 16


def _store_attrs(path: Path) -> dict[str, Any] | None:
    """The ``livefocus`` root attribute of a Zarr v3 store, or None."""
    try:
        doc = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    found = attrs.get(STORE_KEY) if isinstance(attrs, dict) else None
    return found if isinstance(found, dict) else None


#: The key of a running store's writer (:func:`writer_stamp`) in its ``livefocus`` attribute.
WRITER_KEY = "writer"


def writer_stamp() -> dict[str, Any]:
    """Who writes a store (this process: its id, host and start time), for the ``livefocus``
    attribute of a store while it is ``running``: ``overwrite`` refuses a store whose writer
    still runs (:func:`check_output`)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), on Linux; None elsewhere or
    when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime, field 22 of stat (after pid and comm)
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def live_writer(path: str | Path) -> int | None:
    """The process id of the livefocus process that is writing the store ``path`` now (its
    status ``running``, its writer alive on this machine), else None.

    A store left ``running`` by a crash has no live writer: its process is gone, or the id
    now names a process that started after the store (Linux), or it was another machine's."""
    attrs = _store_attrs(Path(path))
    stamp = attrs.get(WRITER_KEY) if attrs is not None else None
    if attrs is None or attrs.get("status") != "running" or not isinstance(stamp, dict):
        return None
    pid, host, started = stamp.get("pid"), stamp.get("host"), stamp.get("started")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return None
    if host != socket.gethostname():
        return None  # another machine's: nothing to ask
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    begun = _process_start(pid)
    if begun is not None and isinstance(started, (int, float)) and begun > started + 2.0:
        return None  # the id was reused by a later process
    return pid


def is_livefocus_output(path: str | Path) -> bool:
    """Whether ``path`` is a folder livefocus wrote (a marked store or model folder)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    return (path / MARKER).is_file() or _store_attrs(path) is not None


def output_kind(path: str | Path) -> str | None:
    """What livefocus output ``path`` is: ``"store"``, the ``kind`` of a marked folder (a model
    folder: ``"model"``), or None (not a livefocus output)."""
    path = Path(path)
    if not is_livefocus_output(path):
        return None
    if _store_attrs(path) is not None:
        return "store"
    try:
        doc = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        doc = None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) else "folder"


def write_marker(folder: str | Path, kind: str) -> None:
    """Mark ``folder`` (not a Zarr store) as written by livefocus; ``kind`` says what it is."""
    text = json.dumps({"writer": "livefocus", "kind": kind}) + "\n"
    Path(folder, MARKER).write_text(text)


#: What each kind of marked folder holds when livefocus wrote it (a model folder: its weights,
#: config and metrics; :func:`livefocus.model.registry.save` and the trainers).
FOLDER_FILES: dict[str, frozenset[str]] = {
    "model": frozenset({MARKER, "config.json", "weights.pt", "metrics.json"}),
}


#: The root attribute key (inside ``livefocus``) listing a store's Zarr nodes, as paths
#: relative to its root ("" the root itself), recorded by its writer.
NODES_KEY = "nodes"
#: Files an operating system drops into folders it shows (folder view settings, thumbnails),
#: which it makes again: they do not keep a livefocus output from being replaced.
OS_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
#: A file Zarr writes first and renames to ``zarr.json`` (left by a process killed meanwhile).
_PARTIAL = r"\.[0-9a-f]{32}\.partial"  # zarr-python's suffix of a file it will rename
_ZARR_PARTIAL = re.compile(rf"zarr{_PARTIAL}")
#: A chunk file's name (a chunk index), or the file tensorstore (``.__lock``) or zarr-python
#: (``.<uuid>.partial``) writes it to first and renames (left by a process killed meanwhile).
_CHUNK_FILE = re.compile(rf"[0-9]+(\.__lock|{_PARTIAL})?")


def store_nodes(path: str | Path) -> list[str]:
    """The Zarr nodes (groups and arrays) of the store ``path``, as paths relative to its
    root ("" the root): what a writer records under :data:`NODES_KEY` once it made them."""
    root = Path(path)
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if "zarr.json" not in files:
            continue
        rel = here.relative_to(root).as_posix()
        found.append("" if rel == "." else rel)
        try:
            kind = json.loads((here / "zarr.json").read_text()).get("node_type")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind == "array":
            dirs.clear()  # its chunks
    return sorted(found)


def _litter(name: str) -> bool:
    return name in OS_LITTER or name.startswith("._")


def foreign_entry(path: str | Path) -> str | None:
    """The first entry of the livefocus output ``path`` that livefocus did not write (a file a
    user put in, a link, a Zarr array of their own), as a path relative to it, or None when it
    holds only livefocus's (and :data:`OS_LITTER`).

    A store holds the Zarr nodes its writer recorded (:data:`NODES_KEY`; a store written
    before 2026-12-02, which records none: any Zarr node), each a folder with its
    ``zarr.json`` (or the file Zarr was writing it to when a crash came, or not yet that, for a
    recorded node) and, in a group, child nodes; in an array, its chunks under ``c``: folders
    and files named by chunk indices, as deep as the array has dimensions (any folder or file
    else, and any link, is foreign; until 2026-12-03 ``c`` was not looked into). A marked folder
    holds the files of its kind (:data:`FOLDER_FILES`).
    """
    path = Path(path)
    attrs = _store_attrs(path)
    if attrs is not None:
        recorded = attrs.get(NODES_KEY)
        nodes = {str(n) for n in recorded} if isinstance(recorded, list) else None
        return _foreign_in_node(path, "", nodes)
    allowed = FOLDER_FILES.get(output_kind(path) or "", frozenset({MARKER}))
    for entry in sorted(path.iterdir()):
        if _litter(entry.name) and entry.is_file() and not entry.is_symlink():
            continue
        if entry.name not in allowed or entry.is_symlink() or not entry.is_file():
            return entry.name
    return None


def _foreign_in_node(folder: Path, rel: str, nodes: set[str] | None) -> str | None:
    try:
        doc = json.loads((folder / "zarr.json").read_text())
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        if nodes is None or rel not in nodes:
            return rel or "zarr.json"
        doc = {}  # a recorded node whose zarr.json a crash kept from being written
    for entry in sorted(folder.iterdir()):
        name = f"{rel}/{entry.name}" if rel else entry.name
        plain_file = entry.is_file() and not entry.is_symlink()
        plain_dir = entry.is_dir() and not entry.is_symlink()
        if plain_file and (
            entry.name == "zarr.json" or _ZARR_PARTIAL.fullmatch(entry.name) or _litter(entry.name)
        ):
            continue
        if doc.get("node_type") == "array" and entry.name == "c" and plain_dir:
            found = _foreign_in_chunks(entry, name, _chunk_depth(doc))
            if found is not None:
                return found
            continue
        ours = (entry / "zarr.json").is_file() if nodes is None else name in nodes
        if plain_dir and ours:
            found = _foreign_in_node(entry, name, nodes)
            if found is not None:
                return found
            continue
        return name
    return None


def _chunk_depth(doc: dict[str, Any]) -> int | None:
    """How many path parts an array's chunk keys have under ``c`` (its dimensions, keys
    separated by '/'), or None for another key encoding (then ``c`` is not looked into)."""
    shape = doc.get("shape")
    encoding = doc.get("chunk_key_encoding")
    if not isinstance(shape, list) or not isinstance(encoding, dict):
        return None
    config = encoding.get("configuration") or {}
    separator = config.get("separator", "/") if isinstance(config, dict) else None
    if encoding.get("name") != "default" or separator != "/":
        return None
    return len(shape) if shape else None  # a 0-d array's one chunk is the file c itself


def _foreign_in_chunks(folder: Path, rel: str, depth: int | None) -> str | None:
    """The first entry under an array's chunk folder ``folder`` (``rel`` in the output) that is
    not a chunk: a link, a name that is no chunk index, a file above the keys' last part or a
    folder at it (None: every entry is a chunk, or ``depth`` is None)."""
    if depth is None:
        return None
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = f"{rel}/{entry.name}"
            if entry.is_symlink():
                return name
            if entry.is_file():
                if _litter(entry.name):
                    continue
                if depth == 1 and _CHUNK_FILE.fullmatch(entry.name):
                    continue
                return name
            if depth > 1 and entry.is_dir() and entry.name.isdigit() and entry.name.isascii():
                found = _foreign_in_chunks(Path(entry.path), name, depth - 1)
                if found is not None:
                    return found
                continue
            return name
    return None


def made_elsewhere(exc: BaseException) -> bool:
    """Whether creating a store failed because something was at its path already (another
    process made it after the output was checked): then it is not the writer's to remove."""
    if isinstance(exc, FileExistsError):
        return True
    from zarr.errors import ContainsArrayError, ContainsGroupError

    return isinstance(exc, (ContainsArrayError, ContainsGroupError))


@contextmanager
def creating(path: str | Path, name: str) -> Iterator[None]:
    """Around a writer's creation of the store ``path`` (which :func:`prepare_output` left
    empty): when it fails (a Ctrl-C, a full disk) what it began to make goes
    (:func:`remove_partial`), unless the failure is that another process made the path
    meanwhile (:func:`made_elsewhere`); an ``OSError`` becomes one that names ``name``."""
    try:
        yield
    except BaseException as exc:
        if not made_elsewhere(exc):
            remove_partial(path)
        if isinstance(exc, OSError):
            why = exc.strerror or str(exc)
            raise OSError(f"{name} {str(path)!r} could not be written: {why}") from exc
        raise


def remove_partial(path: str | Path) -> None:
    """Remove a store that a writer began and could not finish (only what it made: the path
    was empty before). Zarr's chunk writes still in flight when one failed would add folders
    after the removal: they are waited for first (:func:`_zarr_settled`), and the removal is
    repeated while anything comes back within a quarter of a second."""
    path = Path(path)
    _zarr_settled()
    quiet = 0
    for _ in range(40):
        shutil.rmtree(path, ignore_errors=True)
        quiet = quiet + 1 if not path.exists() else 0
        if quiet >= 5:
            return
        time.sleep(0.05)


def _zarr_settled(timeout: float = 10.0) -> None:
    """Wait until zarr's event loop has no task left (at most ``timeout`` s). When one chunk
    write of a gather fails, zarr raises at once and the others go on writing in its loop's
    thread; zarr has no public way to wait for them, so its loop (``zarr.core.sync.loop``) is
    asked directly, and nothing is waited for where that is not there."""
    import asyncio

    try:
        from zarr.core import sync
    except ImportError:
        return
    holder = getattr(sync, "loop", None)
    loop = holder[0] if isinstance(holder, list) and holder else None
    if not isinstance(loop, asyncio.AbstractEventLoop) or not loop.is_running():
        return

    async def others_done() -> None:
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    try:
        asyncio.run_coroutine_threadsafe(others_done(), loop).result(timeout + 1.0)
    except Exception:  # a loop stopping meanwhile, or the wait timing out: remove anyway
        return


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def prepare_output(
    path: str | Path,
    *,
    overwrite: bool,
    inputs: Iterable[str | Path] = (),
    name: str = "out",
    owned: Callable[[Path], bool] = is_livefocus_output,
    kind: str | None = None,
) -> Path:
    """Check that ``path`` may be written (:func:`check_output`), then remove an old output.

    Returns
    -------
    Path
        ``path``, with ``~`` expanded; nothing is there any more.
    """
    path = check_output(path, overwrite=overwrite, inputs=inputs, name=name, owned=owned, kind=kind)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    return path


def check_output(
    path: str | Path,
    *,
    overwrite: bool,
    inputs: Iterable[str | Path] = (),
    within: Iterable[str | Path] = (),
    name: str = "out",
    owned: Callable[[Path], bool] = is_livefocus_output,
    kind: str | None = None,
) -> Path:
    """Check that ``path`` may be written; change nothing.

    Parameters
    ----------
    path : str or Path
        The output (a store or model folder, or a file).
    overwrite : bool
        Replace an existing output; without it an existing ``path`` is an error.
    inputs : iterable of paths
        What the writer reads: the output may not be, hold or lie inside any of them.
    within : iterable of paths
        Other outputs of the same run (which may not exist yet): the output may not lie
        inside any of them.
    name : str
        The parameter named in error messages.
    owned : callable
        Whether an existing ``path`` was written by livefocus (default: the store attribute
        or marker file of a folder; pass another check for a file output).
    kind : str, optional
        What is written (``"store"``, ``"model"``): an existing livefocus output of another
        kind is never replaced (a store is not overwritten by a model folder, nor the reverse).

    Returns
    -------
    Path
        ``path``, with ``~`` expanded.

    Raises
    ------
    ValueError
        ``path`` is, holds or lies inside an input.
    FileExistsError
        ``path`` exists and ``overwrite`` is false, or it was not written by livefocus.
    FileNotFoundError, PermissionError
        The parent folder is missing or not writable.
    """
    if str(path).strip() in ("", ".", "..") or Path(path).name in ("", ".", ".."):
        raise ValueError(f"{name} {str(path)!r} must name a folder or file of its own")
    if kind == "store" and "\\" in str(path):
        raise ValueError(
            f"{name} '{path}' holds a backslash, which the store's chunk writer (tensorstore)"
            " takes for a folder separator: choose a path without one"
        )
    path = Path(path).expanduser()
    target = path.resolve()
    if _within(Path.cwd().resolve(), target):
        raise ValueError(
            f"{name} {str(path)!r} is the current folder or holds it; choose another path"
        )
    for item in within:
        if _within(target, Path(item).expanduser().resolve()):
            raise ValueError(
                f"{name} {str(path)!r} lies inside the output {str(item)!r}; choose another path"
            )
    for item in inputs:
        source = Path(item).expanduser().resolve()
        if _within(target, source) or _within(source, target):
            raise ValueError(
                f"{name} {str(path)!r} would overwrite the input {str(item)!r}; choose another path"
            )
    for parent in target.parents:
        if is_livefocus_output(parent):
            # it would become part of that output, which then holds what it did not write
            raise ValueError(
                f"{name} {str(path)!r} lies inside the livefocus output {str(parent)!r}; "
                "choose a path outside it"
            )
    exists = path.exists() or path.is_symlink()
    # what livefocus did not write is refused first: overwrite would not replace it either
    if exists and not owned(path):
        what = "folder" if path.is_dir() else "file"
        raise FileExistsError(
            f"{name} {str(path)!r} is a {what} that livefocus did not write; "
            "it is never replaced, choose another path"
        )
    if exists and not overwrite:
        raise FileExistsError(
            f"{name} {str(path)!r} already exists; pass overwrite=True to replace it"
        )
    if exists and path.is_dir() and (pid := live_writer(path)) is not None:
        raise FileExistsError(
            f"{name} {str(path)!r} is being written now by livefocus (process {pid}, status "
            "running); it is not replaced under its writer: stop that run first, or choose "
            "another path"
        )
    if exists and path.is_dir():
        foreign = foreign_entry(path)
        if foreign is not None:
            raise FileExistsError(
                f"{name} {str(path)!r} holds {foreign!r}, which livefocus did not write; "
                "it is never removed: move it out first, or choose another path"
            )
    if exists and kind is not None:
        found = output_kind(path)
        if found is not None and found != kind:
            raise FileExistsError(
                f"{name} {str(path)!r} is a livefocus {found}, not a {kind}; "
                "it is not replaced by one, choose another path"
            )
    _check_writable(path.parent, name)
    return path


def _check_writable(parent: Path, name: str) -> None:
    """Raise unless files can be made in the existing folder ``parent``."""
    if not parent.is_dir():
        raise FileNotFoundError(f"{name}: folder {str(parent)!r} does not exist")
    probe = parent / f".livefocus-write-test-{id(parent)}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise PermissionError(f"{name}: cannot write in {str(parent)!r} ({why})") from None


def is_livefocus_file(path: str | Path) -> bool:
    """Whether ``path`` is a PNG or JSON side file livefocus wrote (see :data:`WRITER`)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(_PNG_HEAD)
    except OSError:
        return False
    if head.startswith(_PNG):
        return _png_software(head) == WRITER
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("writer") == WRITER


def _png_software(head: bytes) -> str | None:
    """The ``Software`` text of the PNG whose first bytes are ``head`` (before its image)."""
    pos = len(_PNG)
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos : pos + 4], "big")
        tag = head[pos + 4 : pos + 8]
        if tag in (b"IDAT", b"IEND"):
            return None
        if tag == b"tEXt":
            key, _, value = head[pos + 8 : pos + 8 + size].partition(b"\0")
            if key == b"Software":
                return value.decode("latin-1")
        pos += 12 + size
    return None


def check_suffix(path: str | Path, *, name: str, suffixes: Iterable[str]) -> None:
    """Refuse ``path`` unless its name ends in one of ``suffixes`` (any case); none given:
    any name. The error names ``name``."""
    ends = [s.lower() for s in suffixes]
    if ends and Path(path).suffix.lower() not in ends:
        raise ValueError(f"{name} {str(path)!r} must end in " + " or ".join(ends))


def check_file_output(
    path: str | Path,
    *,
    name: str,
    inputs: Iterable[str | Path] = (),
    within: Iterable[str | Path] = (),
    suffixes: Iterable[str] = (),
    example: str = "",
) -> Path:
    """Check, before any work, that the side file ``path`` (a figure, a screenshot, a JSON
    summary) may be written; change nothing.

    It must be a file name (``suffixes``: one of these endings, when given) in a writable
    folder, neither an input nor inside one (a store's ``zarr.json``), nor inside an output
    being written (``within``). An existing file is replaced only when livefocus wrote it
    (:func:`is_livefocus_file`); anything else there is never replaced. Errors name ``name``
    (and a folder given instead of a file, ``example``: a file name to suggest).
    """
    path = Path(path).expanduser()
    if path.name in ("", ".", "..") or path.is_dir():
        such = f" such as {example}" if example else ""
        raise ValueError(f"{name} {str(path)!r} is a folder; give a file name{such}")
    check_suffix(path, name=name, suffixes=suffixes)
    target = path.resolve()
    for item in inputs:
        if _within(target, Path(item).expanduser().resolve()):
            raise ValueError(
                f"{name} {str(path)!r} would overwrite the input {str(item)!r}; choose another path"
            )
    for item in within:
        if _within(target, Path(item).expanduser().resolve()):
            raise ValueError(
                f"{name} {str(path)!r} lies inside the output {str(item)!r}; choose another path"
            )
    for folder in target.parents:
        if is_livefocus_output(folder):
            raise ValueError(
                f"{name} {str(path)!r} lies inside {str(folder)!r}, which livefocus wrote "
                f"(a store or model folder); choose another path"
            )
    if (path.exists() or path.is_symlink()) and not is_livefocus_file(path):
        raise FileExistsError(
            f"{name} {str(path)!r} is a file livefocus did not write; it is never replaced, "
            f"choose another path"
        )
    _check_writable(path.parent, name)
    return path


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as a JSON side file, marked with ``"writer": "livefocus"``."""
    text = json.dumps({"writer": WRITER, **data}, indent=2, default=str)
    Path(path).write_text(text + "\n")


def store_status(path: str | Path) -> str | None:
    """The recorded ``status`` of a livefocus store (None: not a store, or none recorded)."""
    attrs = _store_attrs(Path(path))
    status = attrs.get("status") if attrs is not None else None
    return status if isinstance(status, str) else None


def check_complete(path: str | Path, name: str = "path") -> None:
    """Raise a ValueError when ``path`` is a livefocus store that was not finished.

    Stores without a status (written by older versions, or by other programs) pass.
    """
    status = store_status(path)
    if status is None or status == "complete":
        return
    try:
        state: str = run_state(status)
    except ValueError:
        state = "error"
    why = {
        "running": "its writer stopped before finishing (crash, full disk, or still running)",
        "interrupted": "its run was stopped early",
    }.get(state, status)
    raise ValueError(f"{name} {str(path)!r} is an incomplete livefocus store ({why})")
