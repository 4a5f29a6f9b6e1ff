"""Atomic file writes: a file the user keeps is either the old one or the complete new one.

Write to a temporary file in the same folder, then ``os.replace`` it over the
target; on any error the temporary file is removed and the target is untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success give it ordinary modes
    (mkstemp makes it 0600; the umask decides) and rename it to ``path``.

    Examples
    --------
    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text()
    'done'
    """
    final = Path(path)
    if mkdir:
        final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Give a finished temporary file ordinary modes (mkstemp makes it 0600; the umask decides)
    and rename it over ``final`` (atomic within one file system)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, final)


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, compressed: bool = True) -> Path:
    """Write plain arrays (loadable with ``allow_pickle=False``) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (the old file or the whole new one, never a part)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def temp_file_beside(path: str | os.PathLike) -> Path:
    """A new empty temporary file in ``path``'s folder with its suffix, for writers that stream
    (a movie): finish it with :func:`publish`, or unlink it on failure."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    return Path(tmp)


def temp_folder_beside(path: str | os.PathLike) -> Path:
    """A new empty temporary folder beside ``path`` (same file system), for :func:`replace_folder`."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))


def replace_folder(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Put the finished folder ``tmp`` at ``final``: the old folder is moved aside in one rename,
    the new one renamed in, and only then the old one removed; a reader sees one or the other."""
    import shutil

    tmp, final = Path(tmp), Path(final)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)               # mkdtemp makes it 0700
    for p in tmp.iterdir():
        if p.is_file():
            os.chmod(p, 0o666 & ~umask)
    if not final.exists():
        os.replace(tmp, final)
        return final
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    os.replace(final, old / final.name)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


# -- bounded reading: a file is read whole only when it fits a limit ---------------------------
DEFAULT_MAX_FILE_MB = 512     # per input file, after gunzip; $MOLVIZ_MAX_FILE_MB or max_file_mb=... overrides
MAX_GZIP_RATIO = 100          # inflated / compressed bytes; molecule text compresses 3-10x, zeros ~1000x
_RATIO_FROM = 16 << 20        # the ratio is judged once this many bytes are inflated
_BLOCK = 1 << 20              # bytes read (or inflated) per step
_SNIFF = 64 << 10             # bytes judged for binary content before the rest is read


def max_file_bytes(value: float | None = None) -> int:
    """The input-file size limit in bytes: ``value`` (MB) if given, else ``$MOLVIZ_MAX_FILE_MB``,
    else :data:`DEFAULT_MAX_FILE_MB`.

    Examples
    --------
    >>> max_file_bytes(2)
    2097152
    """
    source = "max_file_mb"
    if value is None:
        env = os.environ.get("MOLVIZ_MAX_FILE_MB", "").strip()
        if not env:
            return DEFAULT_MAX_FILE_MB << 20
        source, value = f"MOLVIZ_MAX_FILE_MB={env!r}", env
    try:
        mb = float(value)
    except (TypeError, ValueError):
        mb = float("nan")
    if not (mb > 0 and mb < float("inf")):
        from molviz.errors import InputError

        raise InputError(f"{source if source != 'max_file_mb' else f'max_file_mb={value!r}'}: the file size "
                         "limit must be a positive number of megabytes, e.g. 512")
    return max(1, int(mb * (1 << 20)))


def _too_big(path: Path, n: int, max_bytes: int, what: str, inflated: bool = False) -> Exception:
    from molviz.errors import ResourceLimitError

    size = f"{'inflates to more than' if inflated else 'is'} {n / (1 << 20):,.1f} MB"
    return ResourceLimitError(
        f"{path}: the {what} file {size}, over the limit of {max_bytes / (1 << 20):,.0f} MB; load a "
        "smaller file, or raise the limit (max_file_mb=..., --max-file-mb or MOLVIZ_MAX_FILE_MB)")


def _check_text_block(path: Path, block: bytes | bytearray, what: str) -> None:
    """Refuse binary data by its first block: NUL bytes, or text that is mostly unprintable."""
    from molviz.errors import InputError

    if b"\x00" in block:
        raise InputError(f"{path}: binary data (NUL bytes), not a text {what} file; "
                         "check that this is the right file")
    try:
        bytes(block).decode("utf-8")
        return
    except UnicodeDecodeError as exc:
        if exc.start >= len(block) - 4:  # a character cut at the block's end
            return
    text = bytes(block).decode("latin-1")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text) / max(1, len(text))
    if printable < 0.95:
        raise InputError(f"{path}: binary data, not a text {what} file; check that this is the right file")


def _inflate(path: Path, f, max_bytes: int, what: str) -> bytearray:
    """Gunzip the open file ``f`` in a stream: never more than ``max_bytes`` (+ one block) in memory."""
    import zlib

    from molviz.errors import InputError, ResourceLimitError

    out = bytearray()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    in_member, sniffed, read, pending = False, False, 0, b""
    try:
        while True:
            if not pending:
                pending = f.read(_BLOCK)
                read += len(pending)
                if not pending:
                    break
            if not in_member and not pending.strip(b"\x00"):
                pending = b""  # zero padding after the last member
                continue
            in_member = True
            out += inflater.decompress(pending, min(max_bytes + 1 - len(out), _BLOCK))
            pending = inflater.unconsumed_tail
            if inflater.eof:  # a multi-member gzip: the next member starts in unused_data
                pending, in_member = inflater.unused_data, False
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if len(out) > max_bytes:
                raise _too_big(path, len(out), max_bytes, what, inflated=True)
            used = read - len(pending)  # compressed bytes inflated so far
            if len(out) >= _RATIO_FROM and len(out) > MAX_GZIP_RATIO * max(1, used):
                raise ResourceLimitError(
                    f"{path}: {used / (1 << 20):,.2f} MB of gzip inflate to more than "
                    f"{len(out) / (1 << 20):,.0f} MB (over {MAX_GZIP_RATIO}x; molecule files compress "
                    f"3-10x): a damaged file or a gzip bomb, refused. Give the uncompressed {what} file")
            if not sniffed and len(out) >= _SNIFF:
                _check_text_block(path, out[:_SNIFF], what)
                sniffed = True
        if in_member:
            raise EOFError("the compressed stream ends before its end marker (truncated)")
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: not a valid gzip file ({exc}); re-compress it or give the "
                         "uncompressed file") from None
    return out


def read_bounded_bytes(path: str | os.PathLike, *, max_bytes: int, what: str = "molecule") -> bytearray:
    """The bytes of ``path`` (gunzipped in a stream if it ends in ``.gz``), refused before memory
    grows when they would exceed ``max_bytes`` or the first block is binary.

    Raises :class:`~molviz.errors.InputError` for a missing, unreadable, empty, binary or broken
    gzip file and :class:`~molviz.errors.ResourceLimitError` for one over the limit (or a gzip
    that inflates over :data:`MAX_GZIP_RATIO` times).

    Examples
    --------
    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.xyz"; _ = p.write_text("1\\n\\nC 0 0 0\\n")
    >>> bytes(read_bounded_bytes(p, max_bytes=1 << 20, what="XYZ"))[:2]
    b'1\\n'
    """
    from molviz.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path (a relative path starts at the folder molviz runs in)")
    if not path.is_file():
        raise InputError(f"{path}: not a file; give the path of a {what} file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if path.suffix.lower() == ".gz":
                data = _inflate(path, f, max_bytes, what)
            else:
                if size > max_bytes:
                    raise _too_big(path, size, max_bytes, what)
                data = bytearray(f.read(_SNIFF))
                _check_text_block(path, data, what)
                data += f.read(max_bytes + 1 - len(data))
                if len(data) > max_bytes:  # the file grew while we read it
                    raise _too_big(path, len(data), max_bytes, what)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    if not data.strip():
        raise InputError(f"{path}: the file is empty; give a {what} file with atoms in it")
    _check_text_block(path, data[:_SNIFF], what)
    return data


def read_bounded_text(path: str | os.PathLike, *, max_bytes: int, what: str = "molecule") -> str:
    """The text of ``path`` (see :func:`read_bounded_bytes`), UTF-8 else Latin-1, line endings ``\\n``.

    Examples
    --------
    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.xyz"; _ = p.write_bytes(b"1\\r\\n\\r\\nC 0 0 0\\r\\n")
    >>> read_bounded_text(p, max_bytes=1 << 20, what="XYZ")
    '1\\n\\nC 0 0 0\\n'
    """
    from molviz.errors import InputError

    data = read_bounded_bytes(path, max_bytes=max_bytes, what=what)
    if b"\x00" in data:
        raise InputError(f"{path}: binary data (NUL bytes), not a text {what} file; "
                         "check that this is the right file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        printable = sum(c.isprintable() or c in "\r\n\t" for c in text) / len(text)
        if printable < 0.95:
            raise InputError(f"{path}: binary data, not a text {what} file; "
                             "check that this is the right file") from None
    del data
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def read_npz(path: str | os.PathLike, *, what: str, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` the user gave, read without pickles and within the file-size limit.

    ``what`` names the file's role in messages ("latents file", "prepared data"). A missing file,
    a file that is not an npz, or one that holds Python objects (pickles, which molviz never loads)
    is an :class:`~molviz.errors.InputError` naming the file and what to do.

    Examples
    --------
    >>> import tempfile; p = tempfile.mkdtemp() + "/a.npz"
    >>> _ = save_npz(p, {"x": np.arange(3)})
    >>> read_npz(p, what="test file")["x"].tolist()
    [0, 1, 2]
    """
    import zipfile

    from molviz.errors import InputError, ResourceLimitError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist")
    limit = max_file_bytes() if max_bytes is None else max_bytes
    size = p.stat().st_size
    if size > limit:
        raise ResourceLimitError(f"{what} {str(path)!r} is {size / 2**20:.0f} MB, above the {limit / 2**20:.0f} MB "
                                 "input limit (raise it with --max-file-mb or MOLVIZ_MAX_FILE_MB)")
    try:
        with np.load(p, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise InputError(f"{what} {str(path)!r} is a single .npy array, not an .npz archive of named arrays")
            return {k: z[k] for k in z.files}
    except InputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(f"{what} {str(path)!r} holds Python objects (pickled data); molviz reads only plain "
                             "arrays of numbers and strings, never pickles: write the file again with molviz "
                             "or with numpy.savez of plain arrays") from None
        raise InputError(f"{what} {str(path)!r} is not a readable .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{what} {str(path)!r} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
