#!/usr/bin/env python3
"""Whether a bundle's TorchScript files can be read by an older LibTorch, e.g. the 1.10 of
JetPack 4.6 on a Jetson Nano, without that LibTorch at hand.

A TorchScript file is a zip archive whose `<name>/version` record holds its file-format version.
LibTorch reads versions up to its kMaxSupportedFileFormatVersion (caffe2/serialize/versions.h):
6 through LibTorch 1.10, 10 in 1.13. torch.jit.save writes the lowest version the saved code
needs (dynamic versioning: an operator whose meaning changed, such as aten::div at 4 or
aten::linspace at 8, raises it), so a plain convolutional network saved by 1.13 is still a
version 3 file. This prints each file's version and the operators its code calls, and exits 1
if a file's version exceeds --max-version or, for LibTorch 1.10 (--max-version 6), if a file calls
an operator known to be newer (antialiased or nearest-exact resampling, which scripting
F.interpolate pulls in). Other operators are listed for checking against the board's LibTorch.

  /usr/bin/python3 tools/torchscript_compat.py models/fmnist-resnet            # default: 6 (LibTorch 1.10)
  /usr/bin/python3 tools/torchscript_compat.py build/bench/models/resnet50 --max-version 10 --json out.json
"""
import argparse
import json
import os
import re
import sys
import zipfile

# Operators a TorchScript file may call that LibTorch 1.10 lacks (added in 1.11: antialiased and
# nearest-exact resampling; scripting F.interpolate or nn.Upsample pulls them in).
NEWER_THAN_1_10 = re.compile(r"^torch\.(_upsample_\w+_aa|_upsample_nearest_exact\dd)$")
OPS = re.compile(r"\b(torch(?:\.[A-Za-z_][A-Za-z_0-9]*)+|ops\.[a-z_]+\.[A-Za-z_][A-Za-z_0-9]*)\(")
NOT_OPS = ("torch.nn.", "torch.torch.", "torch.libsplit_tools.")


def inspect(path):
    """(file-format version, sorted operator names) of one TorchScript archive."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a TorchScript archive ({e})") from None
    with z:
        names = z.namelist()
        ver = [n for n in names if n.endswith("/version") and n.count("/") == 1] or \
              [n for n in names if n.endswith("/.data/version")]
        if not ver:
            raise ValueError(f"{path}: no version record (is it a TorchScript file?)")
        text = z.read(ver[0]).decode().strip()
        if not text.isdigit():
            raise ValueError(f"{path}: version record '{text}' is not a number")
        ops = set()
        for n in names:
            if "/code/" in n and n.endswith(".py"):
                for m in OPS.finditer(z.read(n).decode(errors="replace")):
                    op = m.group(1)
                    if not op.startswith(NOT_OPS):
                        ops.add(op)
        return int(text), sorted(ops)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="bundle directory (its *.pt files are checked) or one TorchScript file")
    ap.add_argument("--max-version", type=int, default=6,
                    help="highest file-format version the target LibTorch reads (default 6: LibTorch 1.10)")
    ap.add_argument("--json", help="also write the findings here")
    args = ap.parse_args()
    if os.path.isdir(args.bundle):
        files = sorted(os.path.join(args.bundle, f) for f in os.listdir(args.bundle) if f.endswith(".pt"))
    elif os.path.isfile(args.bundle):
        files = [args.bundle]
    else:
        sys.exit(f"torchscript_compat: {args.bundle}: no such file or directory")
    if not files:
        sys.exit(f"torchscript_compat: {args.bundle}: no .pt files")
    found, too_new, all_ops = {}, [], set()
    for f in files:
        try:
            version, ops = inspect(f)
        except ValueError as e:
            sys.exit(f"torchscript_compat: {e}")
        newer = [op for op in ops if args.max_version <= 6 and NEWER_THAN_1_10.match(op)]
        found[os.path.basename(f)] = {"version": version, "operators": ops, "newer_than_1_10": newer}
        all_ops.update(ops)
        flag = "" if version <= args.max_version else f"  NEWER than {args.max_version}"
        if newer:
            flag += f"  calls {', '.join(newer)} (not in LibTorch 1.10)"
        print(f"{os.path.basename(f):<24} file format {version}{flag}")
        if version > args.max_version or newer:
            too_new.append(f)
    print(f"operators called: {', '.join(sorted(all_ops)) or '(none: modules only)'}")
    if args.json:
        json.dump({"max_version": args.max_version, "files": found, "operators": sorted(all_ops)},
                  open(args.json, "w"), indent=1)
    if too_new:
        print(f"torchscript_compat: {len(too_new)} of {len(files)} files need a LibTorch newer than one reading "
              f"file format {args.max_version}", file=sys.stderr)
        return 1
    print(f"all {len(files)} files are file format <= {args.max_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
