"""Figures and tables from stored results: `build_report(df, out_dir)` writes the whole report."""

from esbench.report.build import build_report

__all__ = ["build_report"]
