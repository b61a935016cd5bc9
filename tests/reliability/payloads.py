"""Hand-assembled malicious pickles: payloads that would create a marker file if unpickled.

Every payload here is *armed*: loading it with a full unpickler (`pickle.loads`, or
`torch.load(weights_only=False)` for the torch containers) really creates the marker,
which `test_payloads_are_armed` checks. mia's loaders must refuse all of them.

Pickle opcodes are written by hand (rather than by `pickle.dumps` of a `__reduce__`
object) so that every dangerous opcode form is covered: GLOBAL, STACK_GLOBAL, REDUCE,
INST, OBJ, NEWOBJ, NEWOBJ_EX and BUILD with a `__setstate__` gadget, at protocols 0-5.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

PROTO = b"\x80"
STOP = b"."
MARK = b"("
TUPLE = b"t"
REDUCE = b"R"
BUILD = b"b"
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
SETITEM = b"s"
STACK_GLOBAL = b"\x93"
NEWOBJ = b"\x81"
NEWOBJ_EX = b"\x92"
INST = b"i"
OBJ = b"o"


def unicode(text: str, protocol: int) -> bytes:
    """Push a str in the encoding its protocol allows."""
    if protocol == 0:
        return b"V" + text.encode("raw_unicode_escape") + b"\n"
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def global_ref(module: str, name: str, protocol: int) -> bytes:
    """GLOBAL (protocols 0-3) or STACK_GLOBAL (4-5) pushing module.name."""
    if protocol >= 4:
        return unicode(module, protocol) + unicode(name, protocol) + STACK_GLOBAL
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def header(protocol: int) -> bytes:
    return PROTO + bytes([protocol]) if protocol >= 2 else b""


def args_tuple(args: tuple[str, ...], protocol: int) -> bytes:
    return MARK + b"".join(unicode(a, protocol) for a in args) + TUPLE


@dataclass(frozen=True)
class Payload:
    name: str
    data: bytes  # a complete pickle (ends with STOP)


def call(module: str, func: str, args: tuple[str, ...], protocol: int) -> bytes:
    """module.func(*args) via GLOBAL/STACK_GLOBAL + REDUCE (no STOP)."""
    return global_ref(module, func, protocol) + args_tuple(args, protocol) + REDUCE


def payloads(marker: Path) -> list[Payload]:
    """Every payload, each of which creates `marker` when fully unpickled."""
    m = str(marker)
    shell = f"touch '{m}'"
    python = f"open({m!r}, 'w').close()"
    calls = [
        ("os", "system", (shell,)),
        ("posix", "system", (shell,)),
        ("os", "popen", (shell,)),  # the shell runs even though the pipe is never read
        ("subprocess", "getoutput", (shell,)),
        ("subprocess", "check_output", (shell,)),  # not shell=True: fails, but try a list form below
        ("builtins", "eval", (python,)),
        ("builtins", "exec", (python,)),
        ("builtins", "open", (m, "w")),
    ]
    out: list[Payload] = []
    for protocol in range(6):
        for module, func, args in calls:
            if (module, func) == ("subprocess", "check_output"):
                continue  # needs a list argument: assembled separately below
            out.append(Payload(f"reduce-{module}.{func}-p{protocol}", header(protocol) + call(module, func, args, protocol) + STOP))
        # subprocess.call(["touch", marker]): a list argument
        listed = MARK + unicode("touch", protocol) + unicode(m, protocol) + b"l"
        out.append(Payload(f"reduce-subprocess.call-list-p{protocol}",
                           header(protocol) + global_ref("subprocess", "call", protocol) + MARK + listed + TUPLE
                           + REDUCE + STOP))
        # builtins.__import__('os') -> getattr(module, 'system') -> system(shell)
        imported = call("builtins", "__import__", ("os",), protocol)
        getattr_ = global_ref("builtins", "getattr", protocol) + MARK + imported + unicode("system", protocol) + TUPLE + REDUCE
        out.append(Payload(f"reduce-__import__-getattr-p{protocol}",
                           header(protocol) + getattr_ + args_tuple((shell,), protocol) + REDUCE + STOP))
        # BUILD gadget: an object whose __dict__ gets '__setstate__' = os.system, then BUILD(shell)
        if protocol >= 2:
            make = global_ref("argparse", "Namespace", protocol) + EMPTY_TUPLE + NEWOBJ
            if protocol >= 4:
                make = global_ref("argparse", "Namespace", protocol) + EMPTY_TUPLE + EMPTY_DICT + NEWOBJ_EX
            gadget = (make + EMPTY_DICT + unicode("__setstate__", protocol) + global_ref("os", "system", protocol)
                      + SETITEM + BUILD + unicode(shell, protocol) + BUILD)
            kind = "newobj_ex" if protocol >= 4 else "newobj"
            out.append(Payload(f"{kind}-build-setstate-p{protocol}", header(protocol) + gadget + STOP))
        # the same gadget on a class mia allow-lists by name (mapped onto its inert record)
        if protocol >= 2:
            record = global_ref("__main__", "MembershipDataset", protocol) + EMPTY_TUPLE + NEWOBJ
            gadget = (record + EMPTY_DICT + unicode("__setstate__", protocol) + global_ref("os", "system", protocol)
                      + SETITEM + BUILD + unicode(shell, protocol) + BUILD)
            out.append(Payload(f"allowlisted-build-setstate-p{protocol}", header(protocol) + gadget + STOP))
    # INST (protocol 0) and OBJ (protocol 1): call the class/function with the marked args
    out.append(Payload("inst-os.system-p0", MARK + unicode(shell, 0) + b"ios\nsystem\n" + STOP))
    out.append(Payload("inst-builtins.exec-p0", MARK + unicode(python, 0) + b"ibuiltins\nexec\n" + STOP))
    out.append(Payload("obj-os.system-p1", MARK + global_ref("os", "system", 1) + unicode(shell, 1) + OBJ + STOP))
    out.append(Payload("obj-builtins.eval-p1", MARK + global_ref("builtins", "eval", 1) + unicode(python, 1) + OBJ + STOP))
    # a payload hidden inside a plausible task object: MembershipDataset(ids=..., imgs=<os.system(...)>)
    for protocol in (2, 4):
        record = global_ref("__main__", "MembershipDataset", protocol) + EMPTY_TUPLE + NEWOBJ
        state = (EMPTY_DICT + MARK + unicode("ids", protocol) + MARK + b"K\x01" + b"l"
                 + unicode("imgs", protocol) + call("os", "system", (shell,), protocol)
                 + unicode("labels", protocol) + MARK + b"K\x00" + b"l" + b"u")
        out.append(Payload(f"nested-in-dataset-p{protocol}", header(protocol) + record + state + BUILD + STOP))
    return out


# --- containers --------------------------------------------------------------------------


def torch_zip(pickle_bytes: bytes) -> bytes:
    """A torch zip checkpoint (as torch.save writes it) whose data.pkl is `pickle_bytes`."""
    template = io.BytesIO()
    torch.save({"x": torch.zeros(1)}, template)
    source = zipfile.ZipFile(io.BytesIO(template.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = pickle_bytes if info.filename.endswith("/data.pkl") else source.read(info)
            target.writestr(info.filename, data)
    return out.getvalue()


def torch_legacy(pickle_bytes: bytes) -> bytes:
    """The legacy (non-zip) torch.save format with `pickle_bytes` as the saved object."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(MAGIC_NUMBER, protocol=2) + pickle.dumps(PROTOCOL_VERSION, protocol=2)
            + pickle.dumps(sys_info, protocol=2) + pickle_bytes + pickle.dumps([], protocol=2))


def torch_legacy_magic(pickle_bytes: bytes) -> bytes:
    """Legacy format with the payload where the magic number is read (the very first load)."""
    return pickle_bytes


CONTAINERS = {"zip": torch_zip, "legacy": torch_legacy, "raw": torch_legacy_magic}


class MembershipDataset:
    """What the assignment's own script defines in `__main__` (a plain class)."""


def fully_unpickle(container: str, data: bytes) -> None:
    """What an unsafe reader would do (used only to prove the payloads are armed):
    a full unpickle, with the assignment's `MembershipDataset` defined in `__main__`."""
    import sys

    main = sys.modules["__main__"]
    saved = getattr(main, "MembershipDataset", None)
    main.MembershipDataset = MembershipDataset  # type: ignore[attr-defined]
    try:
        if container == "raw":
            pickle.loads(data)
        else:
            torch.load(io.BytesIO(data), weights_only=False)
    finally:
        if saved is None:
            del main.MembershipDataset
        else:
            main.MembershipDataset = saved
