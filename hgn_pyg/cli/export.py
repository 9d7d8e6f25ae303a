"""Export a lifter: ``hgn-export --checkpoint CKPT --format onnx|pt2 --out FILE [--exporter
dynamo|legacy] [--no-check] [--debug]`` (also ``python -m hgn_pyg.export``).

Writes the checkpoint's model with a dynamic batch and the metadata a
:class:`~hgn_pyg.inference.lifter.Lifter` needs (:mod:`hgn_pyg.inference.export`); the written file
is read back and compared with the eager model (max abs difference <= 1e-4 m) unless
``--no-check``. ``hgn_pyg.lift --checkpoint FILE.onnx`` then lifts with it. Errors: one line,
exit status 2, nothing written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from hgn_pyg.cli.common import run_parsed
from hgn_pyg.errors import ConfigError
from hgn_pyg.inference.export import FORMATS, ONNX_EXPORTERS, SUFFIXES, export_lifter

__all__ = ["main", "build_parser"]

PROG = "python -m hgn_pyg.export"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", metavar="CKPT", required=True, help="an hgn_pyg checkpoint (trained or converted)")
    p.add_argument("--format", default="onnx", choices=FORMATS, help="onnx (onnxruntime) or pt2 (torch.export)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="output file (default: the checkpoint's name with .onnx / .pt2)")
    p.add_argument("--exporter", default="dynamo", choices=ONNX_EXPORTERS,
                   help="ONNX exporter: dynamo (torch.onnx.export(dynamo=True)) or legacy (TorchScript)")
    p.add_argument("--no-check", action="store_true", help="do not compare the written file with the eager model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    return p


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(SUFFIXES[args.format])
    if out.suffix.lower() != SUFFIXES[args.format]:
        raise ConfigError(f"--out {out}: a {args.format} lifter is named *{SUFFIXES[args.format]} (the lifter "
                          "recognises exported files by their suffix)")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"--out {out}: exists; choose another file or --overwrite")
    written = export_lifter(args.checkpoint, args.format, out, exporter=args.exporter, check=not args.no_check)
    print(f"exported {args.checkpoint} as {args.format}"
          + (f" ({args.exporter} exporter)" if args.format == "onnx" else "") + f": {written}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_parsed(build_parser(), _run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
