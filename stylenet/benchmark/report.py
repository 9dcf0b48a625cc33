"""The benchmark's result as a text table for the terminal and as Markdown tables for docs/."""

from __future__ import annotations

from typing import Any

from stylenet.benchmark.peak import format_peak
from stylenet.benchmark.styles import style_variants


def machine_lines(m: dict[str, Any]) -> list[str]:
    """The CPU and GPU of `stylenet.benchmark.machine.machine_info()`, a line each, as every report opens."""
    flags = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["cpu_flags"].items())
    return [
        f"CPU: {m['cpu_model']}; {m['os_cpu_count']} cores, torch threads {m['torch_num_threads']}; {flags}",
        f"GPU: {m['gpu'] or 'none'}; torch {m['torch']}, onnxruntime {m['onnxruntime'] or 'not installed'}",
    ]


def _notes(result: dict[str, Any]) -> list[str]:
    return [
        f"vs ref: {result['ratio_note']}",
        *([f"memory reuse: {result['allocator_note']}"] if "allocator_note" in result else []),
        "PSNR: of the output against eager-fp32's, same weights and photo (scikit-image's astronaut, resized)",
        f"peak RSS: {result['peak_rss_mb_note']}",
        *([f"training: {result['training_note']}"] if "training_note" in result else []),
        *([f"styles: {result['styles_note']}"] if "styles_note" in result else []),
        *([f"peak: {result['peak_note']}"] if "peak_note" in result else []),
        *([result["efficiency_note"]] if "efficiency_note" in result else []),
    ]


def _style_rows(result: dict[str, Any]) -> list[list[str]]:
    """Per (size, memory reuse): single-style ms/frame, then ms/frame and ratio of one style and of the blend."""
    n = result["settings"].get("styles")
    if not n:
        return []
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in result["inference"]:
        by_key.setdefault((row["size"], row.get("memory_reuse", "-")), {})[row["backend"]] = row
    table = []
    for (size, reuse), rows in by_key.items():
        single, one, blend = (rows.get(name) for name in style_variants(n))
        if single is None:
            continue
        cells = [size, reuse, _cell(single, "ms_per_frame", 1)]
        for row in (one, blend):
            cells += [_cell(row, "ms_per_frame", 1), _cell(row, "ratio_vs_single_style", 3, "x")]
        table.append(cells)
    return table


def _style_header(result: dict[str, Any]) -> list[str]:
    n = result["settings"]["styles"]
    return ["size", "memory reuse", "1 style ms/frame", f"1 of {n} styles ms/frame", "vs 1 style"] + [
        f"blend of {n} ms/frame",
        "vs 1 style",
    ]


def _efficiency_cells(row: dict[str, Any] | None, efficiency: bool) -> str:
    """The GFLOPS and % of peak cells of the printed table (nothing where the run measured no peak)."""
    if not efficiency:
        return ""
    gflops, percent = (row or {}).get("effective_gflops"), (row or {}).get("percent_of_peak")
    beside = (row or {}).get("percent_of_beside_peak")
    cells = f"{(f'{gflops:.1f}' if gflops else '-'):>9}{(f'{percent:.1f}%' if percent else '-'):>8}"
    return cells + f"{(f'{beside:.1f}%' if beside else '-'):>9}"


def _table_row(
    label: str, row: dict[str, Any], time_key: str, rate_key: str, psnr_column: bool = True, efficiency: bool = False
) -> str:
    """One line of the printed table: time, rate, ratio, GFLOPS and memory, or why the row was skipped."""
    label += f"{row.get('memory_reuse', '-'):<7}"
    if row.get("status") != "ok":
        return f"{label}  skipped: {row.get('reason', '')[:90]}"
    ratio, psnr = row.get("ratio_vs_reference"), row.get("psnr_vs_eager_fp32_db")
    gpu = f"{row['peak_gpu_mb']:>13.0f}" if "peak_gpu_mb" in row else ""
    return (
        f"{label}{row[time_key]:>10.1f}{row[rate_key]:>10.2f}"
        f"{(f'{ratio:.2f}x' if ratio else '-'):>8}{_efficiency_cells(row, efficiency)}{row['peak_rss_mb']:>13.0f}"
        f"{(f'{psnr:.1f}' if psnr is not None else '-') if psnr_column else '':>9}{gpu}"
    )


def format_report(result: dict[str, Any]) -> str:
    """A readable text table of `result`."""
    gpu = "peak GPU MB" if result["machine"]["gpu"] else ""
    efficiency = "peak" in result
    flops = f"{'GFLOPS':>9}{'% peak':>8}{'% beside':>9}" if efficiency else ""
    lines = [*machine_lines(result["machine"])]
    if efficiency:
        lines.append(f"peak: {format_peak(result['peak']) or 'not measured'}")
    lines += [
        "",
        f"{'size':<11}{'backend':<22}{'reuse':<7}{'ms/frame':>10}{'frames/s':>10}{'vs ref':>8}{flops}"
        f"{'peak RSS MB':>13}{'PSNR dB':>9}{gpu:>13}",
    ]
    for row in result["inference"]:
        label = f"{row['size']:<11}{row['backend']:<22}"
        lines.append(_table_row(label, row, "ms_per_frame", "frames_per_s", efficiency=efficiency))
    if result["training"]:
        s = result["settings"]
        lines += [
            "",
            f"training, {s['train_size']} px, batch {s['train_batch']}:",
            f"{'step':<22}{'reuse':<7}{'ms/step':>10}{'images/s':>10}{'vs ref':>8}{flops}{'peak RSS MB':>13}{'':>9}"
            f"{gpu:>13}",
        ]
        for row in result["training"]:
            label = f"{row['backend']:<22}"
            lines.append(
                _table_row(label, row, "ms_per_step", "images_per_s", psnr_column=False, efficiency=efficiency)
            )
    styles = _style_rows(result)
    if styles:
        widths = [11, 7, 18, 25, 12, 22, 12]
        header = ["size", "reuse", *_style_header(result)[2:]]
        lines += ["", "multi-style network against single-style (the stylize path):"]
        for cells in [header, *styles]:
            left = f"{cells[0]:<{widths[0]}}{cells[1]:<{widths[1]}}"
            lines.append(left + "".join(f"{c:>{w}}" for c, w in zip(cells[2:], widths[2:], strict=True)))
    return "\n".join([*lines, "", *_notes(result)])


def _cell(row: dict[str, Any] | None, key: str, digits: int = 0, suffix: str = "") -> str:
    if row is None or row.get("status") != "ok":
        return "skipped" if row is not None and key != "psnr_vs_eager_fp32_db" else ""
    if row.get(key) is None:  # measured, but this figure has no meaning here (no fp16 peak on a CPU, say)
        return ""
    return f"{row[key]:.{digits}f}{suffix}"


def _peak_table(peak: dict[str, float]) -> list[str]:
    """This machine's peak GFLOPS: one line per operation, one column per precision measured."""
    precisions = [p for p in ("fp32", "bf16", "fp16") if f"conv3x3_{p}_gflops" in peak]
    if not precisions:
        return ["Peak: not measured."]
    lines = ["| peak (this machine, this run) | " + " | ".join(f"{p} GFLOPS" for p in precisions) + " |"]
    lines.append("|" + "---|" * (len(precisions) + 1))
    for op, label in (("conv3x3", "3x3 convolution"), ("matmul", "matrix product")):
        figures = [f"{peak[f'{op}_{p}_gflops']:.0f}" if f"{op}_{p}_gflops" in peak else "" for p in precisions]
        lines.append(f"| {label} | " + " | ".join(figures) + " |")
    return lines


def format_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """Markdown tables of `result`: one line per (backend, memory reuse), one column pair per size."""
    sizes = result["settings"]["sizes"]
    largest = sizes[-1] if sizes else ""
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in result["inference"]:
        rows.setdefault((row["backend"], row.get("memory_reuse", "-")), {})[row["size"]] = row
    efficiency = "peak" in result
    per_size = ("ms/frame", "vs ref", "% of peak", "% of peak beside") if efficiency else ("ms/frame", "vs ref")
    header = ["backend", "memory reuse"] + [f"{s} {h}" for s in sizes for h in per_size]
    header += [f"GFLOPS at {largest}"] if efficiency else []
    header += [f"peak RSS at {largest} (MB)", f"PSNR at {largest} (dB)"]
    lines = [*(f"{line}  " for line in machine_lines(result["machine"]))]
    if command:
        lines += ["", f"Made by `{command}`."]
    if efficiency:
        lines += ["", *_peak_table(result["peak"])]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (backend, reuse), by_size in rows.items():
        cells = [backend, reuse]
        for size in sizes:
            cells += [_cell(by_size.get(size), "ms_per_frame"), _cell(by_size.get(size), "ratio_vs_reference", 2, "x")]
            if efficiency:
                percents = ("percent_of_peak", "percent_of_beside_peak")
                cells += [_cell(by_size.get(size), key, 1, "%") for key in percents]
        cells += [_cell(by_size.get(largest), "effective_gflops", 1)] if efficiency else []
        cells += [_cell(by_size.get(largest), "peak_rss_mb"), _cell(by_size.get(largest), "psnr_vs_eager_fp32_db", 1)]
        lines.append("| " + " | ".join(cells) + " |")
    if result["training"]:
        s = result["settings"]
        header = [f"training step, {s['train_size']} px, batch {s['train_batch']}", "memory reuse", "ms/step"]
        header += ["images/s", "vs ref", *(["GFLOPS", "% of peak", "% of peak beside"] if efficiency else [])]
        header.append("peak RSS (MB)")
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in result["training"]:
            cells = [row["backend"], row.get("memory_reuse", "-"), _cell(row, "ms_per_step")]
            cells += [_cell(row, "images_per_s", 2), _cell(row, "ratio_vs_reference", 2, "x")]
            if efficiency:
                cells += [_cell(row, "effective_gflops", 1), _cell(row, "percent_of_peak", 1, "%")]
                cells.append(_cell(row, "percent_of_beside_peak", 1, "%"))
            cells.append(_cell(row, "peak_rss_mb"))
            lines.append("| " + " | ".join(cells) + " |")
    styles = _style_rows(result)
    if styles:
        header = _style_header(result)
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in styles]
    return "\n".join([*lines, "", *(f"- {note}" for note in _notes(result)), ""])
