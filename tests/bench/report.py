#!/usr/bin/python3
"""tests/bench/report.py - the tables of `make bench`, from the raw outputs of tests/bench/run.sh.

Usage: /usr/bin/python3 tests/bench/report.py OUT_DIR [--last K] [--dp-batch B]
                                              [--model-batch B] [--quick 0|1] [--sections S]
                                              [--large-batch B] [--scale-batch B]
Reads OUT_DIR/raw/* (and OUT_DIR/dp/*/metrics.jsonl), prints markdown tables and writes them
to OUT_DIR/report.md. Exit status 1 when a measurement is missing or, in the full run, the
loss parity check fails (> 5%); 0 otherwise (throughput targets are reported, not enforced).
"""
import argparse
import json
import glob
import os
import re
import statistics
import sys

PARITY_TOL = 0.05


class Missing(Exception):
    pass


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        raise Missing(f"{path} is missing")


def grab(pattern, text, what):
    m = re.search(pattern, text, re.M)
    if not m:
        raise Missing(f"no {what} in the output")
    return m


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def jsonl(path):
    return [json.loads(line) for line in read(path).splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--last", type=int, default=100)
    ap.add_argument("--dp-batch", type=int, default=64)
    ap.add_argument("--model-batch", type=int, default=64)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--sections", default="model large scaling dp parity sample")
    ap.add_argument("--large-batch", type=int, default=16)
    ap.add_argument("--scale-batch", type=int, default=32)
    a = ap.parse_args()
    raw = os.path.join(a.out, "raw")
    quick = a.quick == "1"
    lines, problems = [], []

    def emit(s=""):
        lines.append(s)

    chosen = a.sections.split()

    def section(title, fn):
        if fn.__name__ not in chosen:
            return
        emit(f"## {title}")
        emit()
        try:
            fn()
        except Missing as e:
            problems.append(f"{title}: {e}")
            emit(f"(not measured: {e})")
        emit()

    summary = {}
    emit("# dfm benchmarks" + (" (QUICK smoke run: not representative)" if quick else ""))
    emit()
    env = read(os.path.join(raw, "env.txt")) if os.path.exists(os.path.join(raw, "env.txt")) else ""
    for ln in env.splitlines():
        emit(f"- {ln}")
    emit()

    # ---- 1. model ---------------------------------------------------------------------------
    def model():
        head1 = read(os.path.join(raw, "bench-resolved.yaml")).splitlines()[0]
        gflop = float(grab(r"([\d.]+) GFLOP per sample", head1, "GFLOP per sample").group(1))
        sg = read(os.path.join(raw, "sgemm.txt"))
        gpeak = {(e, th): float(grab(rf"^{e}-sgemm threads {th} peak ([\d.]+)", sg,
                                     f"{e} GEMM peak").group(1))
                 for e in ("own", "openblas", "onednn") for th in (1, 2)}
        peak = {th: gpeak["openblas", th] for th in (1, 2)}
        dpeak = {th: gpeak["onednn", th] for th in (1, 2)}
        opeak = {th: gpeak["own", th] for th in (1, 2)}
        used = grab(r"^dfm layers use: (.*)$", sg, "GEMM engine of dfm").group(1)
        kpeak = dpeak if used.startswith("oneDNN") else opeak if used.startswith("dfm") else peak
        engines = {e: grab(rf"^engine {e}: (.*)$", sg, f"{e} engine name").group(1)
                   for e in ("own", "openblas", "onednn")}
        res = {}
        for eng in ("dfm", "torch"):
            for th in (1, 2):
                # the rounds' processes (engines taking turns), repetitions pooled
                names = sorted(os.path.basename(f)[:-4] for f in
                               glob.glob(os.path.join(raw, f"model-{eng}-{th}-r*.txt")))
                if not names:
                    raise Missing(f"no model-{eng}-{th}-r*.txt in {raw}")
                fwd, steps, busy, rss, per_round, timer = [], [], [], 0, [], None
                for name in names:
                    txt = read(os.path.join(raw, f"{name}.txt"))
                    m = grab(rf"^threads {th}: forward .*?timer (\w+)", txt, f"{name} result")
                    timer = m.group(1)
                    if timer != ("cpu" if th == 1 else "wall"):
                        raise Missing(f"{name}.txt was timed by {timer} time")
                    reps = re.findall(r"^rep threads \d+: forward wall ([\d.]+) cpu ([\d.]+) s, "
                                      r"step wall ([\d.]+) cpu ([\d.]+)", txt, re.M)
                    if not reps:
                        raise Missing(f"no repetitions in {name}.txt")
                    k = 1 if th == 1 else 0  # 1 thread: CPU time; 2 threads: wall time
                    fwd += [float(r[k]) for r in reps]
                    st = [float(r[2 + k]) for r in reps]
                    steps += st
                    per_round.append(statistics.median(st))
                    busy += [float(r[3]) / float(r[2]) for r in reps]
                    tm = read(os.path.join(raw, f"{name}.time"))
                    rss = max(rss, int(grab(r"maxrss_kb (\d+)", tm, "peak RSS").group(1)))
                res[eng, th] = dict(fwd=a.model_batch / statistics.median(fwd),
                                    step=a.model_batch / statistics.median(steps),
                                    reps=len(steps), rounds=len(names), timer=timer, rss=rss,
                                    step_s=per_round, busy=statistics.median(busy))
        rows = []
        for th in (1, 2):
            d, t = res["dfm", th], res["torch", th]
            rows.append([th, "train step", f"{d['step']:.2f}", f"{t['step']:.2f}",
                         f"**{d['step'] / t['step']:.2f}**",
                         f"{3 * gflop * d['step']:.1f}", f"{3 * gflop * t['step']:.1f}",
                         f"{opeak[th]:.1f}", f"{peak[th]:.1f}", f"{dpeak[th]:.1f}",
                         f"{3 * gflop * d['step'] / kpeak[th] * 100:.0f}%",
                         " / ".join(f"{x:.2f}" for x in d["step_s"]),
                         " / ".join(f"{x:.2f}" for x in t["step_s"]),
                         f"{d['busy']:.2f} / {t['busy']:.2f}"])
            rows.append([th, "forward", f"{d['fwd']:.2f}", f"{t['fwd']:.2f}",
                         f"**{d['fwd'] / t['fwd']:.2f}**",
                         f"{gflop * d['fwd']:.1f}", f"{gflop * t['fwd']:.1f}",
                         f"{opeak[th]:.1f}", f"{peak[th]:.1f}", f"{dpeak[th]:.1f}",
                         f"{gflop * d['fwd'] / kpeak[th] * 100:.0f}%", "", "", ""])
        emit(f"fmnist-small U-Net ({head1.lstrip('# ').replace('model: ', '')}), batch "
             f"{a.model_batch}. images/s = batch / median of {res['dfm', 1]['reps']} repetitions: "
             f"{res['dfm', 1]['rounds']} round(s) in which the engines take turns (the first to "
             "run alternates), each process warmed up once; 1 thread timed by process CPU time, "
             "2 threads by wall time. GFLOP/s "
             f"counts {gflop:.3f} GFLOP per image forward (`dfm validate`) and 3x that for a "
             "training step (forward + backward, the usual convention; Adam's O(params) work is "
             "not counted). GEMM ceiling = each engine's best median GFLOP/s over the fmnist-small "
             "convolution GEMM shapes (table below), same run; dfm's layers ran "
             f"**{used}**, and '% of ceiling' is against that engine's.")
        emit()
        emit(table(["threads", "what", "dfm img/s", "PyTorch img/s", "dfm/PyTorch",
                    "dfm GFLOP/s", "PyTorch GFLOP/s", "own GEMM GFLOP/s", "OpenBLAS GEMM GFLOP/s",
                    "oneDNN GEMM GFLOP/s", "dfm % of ceiling",
                    "dfm s/step (median by round)", "PyTorch s/step (median by round)",
                    "cores busy, dfm / PyTorch"], rows))
        emit()
        emit("cores busy = median CPU seconds / wall seconds of a training step: about 2.0 for a "
             "2-thread run on an idle machine; near 1 means the other work on the machine left "
             "this process one core, and the 2-thread wall-time figures measure that contention, "
             "not the engine. The 1-thread rows (CPU time) are the robust comparison.")
        emit()
        grows = []
        for m in re.finditer(r"^gemm (\w+) threads (\d+) shape (\S+) GFLOP/s .* median ([\d.]+)$",
                             sg, re.M):
            grows.append([m.group(1), m.group(2), m.group(3), m.group(4)])
        shapes = sorted({r[2] for r in grows}, key=lambda x: [int(v) for v in x.split("x")])
        gt = {(r[0], r[1], r[2]): r[3] for r in grows}
        emit("GEMM engines on the fmnist-small convolution shapes (M x N x K, C = A B; im2col "
             "GEMMs of 16 samples: a 28x28 and a 14x14 3x3 convolution and an input gradient), "
             "median GFLOP/s, engines taking turns in the same run (1 thread: thread CPU time; 2 "
             f"threads: wall time). {grab(r'load average (.*)$', sg, 'load').group(0)}.")
        emit()
        emit(table(["engine", "kernel"] + [f"{sh}, {th} thr" for th in ("1", "2") for sh in shapes],
                   [[e, engines[e]] + [gt.get((e, th, sh), "") for th in ("1", "2") for sh in shapes]
                    for e in ("own", "openblas", "onednn")]))
        emit()
        emit(table(["threads", "dfm peak RSS", "PyTorch peak RSS"],
                   [[th, f"{res['dfm', th]['rss'] / 1024:.0f} MiB",
                     f"{res['torch', th]['rss'] / 1024:.0f} MiB"] for th in (1, 2)]))
        emit()
        emit("(peak RSS of the whole process, the largest over the rounds: each engine and thread "
             "count ran alone in its own process; PyTorch's includes the Python interpreter and "
             "libtorch, ~300 MiB.)")
        summary["step_ratio_2"] = res["dfm", 2]["step"] / res["torch", 2]["step"]
        summary["step_ratio_1"] = res["dfm", 1]["step"] / res["torch", 1]["step"]
        summary["busy_2"] = (res["dfm", 2]["busy"], res["torch", 2]["busy"])
        summary["fwd_ratio_2"] = res["dfm", 2]["fwd"] / res["torch", 2]["fwd"]
        summary["rss_ratio_2"] = res["dfm", 2]["rss"] / res["torch", 2]["rss"]
        summary["gemm_used"] = used

    section("1. Model throughput: dfm vs PyTorch", model)

    def run_result(name, th):
        """images/s (forward, step), peak RSS KiB and the model line of raw/NAME.txt"""
        txt = read(os.path.join(raw, f"{name}.txt"))
        m = grab(rf"^threads {th}: forward ([\d.]+) images/s.*?train step ([\d.]+) images/s",
                 txt, f"{name} result")
        rss = int(grab(r"maxrss_kb (\d+)", read(os.path.join(raw, f"{name}.time")),
                       "peak RSS").group(1))
        head = grab(r"U-Net: (\d+) parameters", txt, f"{name} parameters")
        return float(m.group(1)), float(m.group(2)), rss, int(head.group(1))

    # ---- large model ------------------------------------------------------------------------
    def large():
        rows = []
        for th in (1, 2):
            df, ds, dr, npar = run_result(f"large-dfm-{th}", th)
            tf, ts, tr, _ = run_result(f"large-torch-{th}", th)
            rows.append([th, f"{ds:.3f}", f"{ts:.3f}", f"**{ds / ts:.2f}**", f"{df:.3f}",
                         f"{tf:.3f}", f"{df / tf:.2f}", f"{dr / 1024:.0f} MiB",
                         f"{tr / 1024:.0f} MiB", f"**{dr / tr:.2f}**"])
            summary[f"large_{th}"] = (ds / ts, dr / tr)
        emit(f"CIFAR-10 DDPM U-Net (jobs/cifar10-ddpm.yaml, {npar} parameters, 32x32x3), batch "
             f"{a.large_batch}; training step (forward + backward + Adam) and forward, images/s "
             "as in section 1 (1 thread CPU time, 2 threads wall time); peak RSS of each "
             "process.")
        emit()
        emit(table(["threads", "dfm step img/s", "PyTorch step img/s", "dfm/PyTorch",
                    "dfm fwd img/s", "PyTorch fwd img/s", "fwd dfm/PyTorch", "dfm peak RSS",
                    "PyTorch peak RSS", "RSS dfm/PyTorch"], rows))

    section("Large model: CIFAR-10 DDPM U-Net", large)

    # ---- scaling ----------------------------------------------------------------------------
    def scaling():
        series = []  # (axis label, parameter name, [(value, dfm step, torch step, dfm rss, torch rss)])
        for axis, key, label in (("batch", "b", "batch (width 64, 28x28)"),
                                 ("width", "ch", f"base width (batch {a.scale_batch}, 28x28)"),
                                 ("image", "img", f"image size (batch {a.scale_batch}, width 64)")):
            pts = []
            for f in sorted(glob.glob(os.path.join(raw, f"scale-dfm-{key}*.txt")),
                            key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)[len(f"scale-dfm-{key}"):]) or 0)):
                v = os.path.basename(f)[len(f"scale-dfm-{key}"):-4]
                if not v.isdigit():
                    continue
                _, ds, dr, npar = run_result(f"scale-dfm-{key}{v}", 1)
                _, ts, tr, _ = run_result(f"scale-torch-{key}{v}", 1)
                pts.append((int(v), ds, ts, dr, tr, npar))
            if not pts:
                raise Missing(f"no {axis} points")
            series.append((axis, label, pts))
        emit("fmnist-small U-Net varied one parameter at a time (tests/bench/bench_model.c and "
             "bench_torch.py with the same model spelling), 1 thread (CPU time), training step "
             "images/s and peak RSS of each process.")
        emit()
        rows = []
        for axis, label, pts in series:
            for v, ds, ts, dr, tr, npar in pts:
                rows.append([label, v, npar, f"{ds:.2f}", f"{ts:.2f}", f"{ds / ts:.2f}",
                             f"{dr / 1024:.0f}", f"{tr / 1024:.0f}", f"{dr / tr:.2f}"])
        emit(table(["varied", "value", "parameters", "dfm step img/s", "PyTorch step img/s",
                    "dfm/PyTorch", "dfm peak RSS MiB", "PyTorch peak RSS MiB", "RSS dfm/PyTorch"],
                   rows))
        emit()
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            emit("(no plot: python3-matplotlib is not installed)")
        else:
            fig, ax = plt.subplots(2, len(series), figsize=(4.2 * len(series), 7))
            for c, (axis, label, pts) in enumerate(series):
                xs = [p[0] for p in pts]
                ax[0][c].plot(xs, [p[1] for p in pts], "o-", label="dfm")
                ax[0][c].plot(xs, [p[2] for p in pts], "s--", label="PyTorch")
                ax[1][c].plot(xs, [p[3] / 1024 for p in pts], "o-", label="dfm")
                ax[1][c].plot(xs, [p[4] / 1024 for p in pts], "s--", label="PyTorch")
                ax[0][c].set_title(label, fontsize=9)
                ax[1][c].set_xlabel(axis)
                ax[0][c].set_ylabel("train step images/s (1 thread)")
                ax[1][c].set_ylabel("peak RSS (MiB)")
                for r in (0, 1):
                    ax[r][c].set_xticks(xs)
                    ax[r][c].legend(fontsize=8)
            fig.tight_layout()
            png = os.path.join(a.out, "scaling.png")
            fig.savefig(png, dpi=100)
            emit(f"![scaling]({os.path.basename(png)}) (written to {png})")
        emit()
        drows = []
        for ch in (32, 64):
            ips = {}
            for lay in ("np1x2", "np2x1"):
                d = os.path.join(a.out, "dp", f"scale-ch{ch}-{lay}")
                recs = jsonl(os.path.join(d, "metrics.jsonl"))
                if len(recs) < 2:
                    raise Missing(f"scale-ch{ch}-{lay}: fewer than 2 steps in metrics.jsonl")
                dts = [recs[i]["wall_s"] - recs[i - 1]["wall_s"] for i in range(1, len(recs))]
                ips[lay] = (statistics.median(dts), recs[-1]["loss"])
            rss = {lay: int(grab(r"maxrss_kb (\d+)", read(os.path.join(raw, f"dp-scale-ch{ch}-{lay}.time")),
                                 "peak RSS").group(1)) for lay in ips}
            drows.append([ch, f"{a.dp_batch / ips['np1x2'][0]:.2f}", f"{a.dp_batch / ips['np2x1'][0]:.2f}",
                          f"{ips['np1x2'][0] / ips['np2x1'][0]:.2f}",
                          f"{rss['np1x2'] / 1024:.0f} / {rss['np2x1'] / 1024:.0f}",
                          f"{ips['np1x2'][1]:.4f} / {ips['np2x1'][1]:.4f}"])
        emit("`dfm train jobs/bench-fmnist-small.yaml` at base widths 32 and 64 as 1 rank x 2 "
             f"threads and 2 ranks x 1 thread (deterministic reduction), global batch "
             f"{a.dp_batch}; images/s from the median per-step wall_s delta (step 1 discarded). "
             "Peak RSS is mpirun's largest child (one rank). Equal last losses are the "
             "rank-count invariance.")
        emit()
        emit(table(["width", "1x2 img/s", "2x1 img/s", "2x1 / 1x2", "peak RSS MiB (1x2 / 2x1)",
                    "last loss (1x2 / 2x1)"], drows))

    section("Scaling: batch, width, image size; data-parallel layouts", scaling)

    # ---- 2. data parallel -------------------------------------------------------------------
    def dp():
        rows, ips = [], {}
        for name, label in (("np1x2-det", "1 rank x 2 threads"),
                            ("np2x1-det", "2 ranks x 1 thread, deterministic"),
                            ("np2x1-overlap", "2 ranks x 1 thread, overlap")):
            dts, r, last = [], 1, None
            while os.path.isdir(os.path.join(a.out, "dp", f"{name}-r{r}")):
                recs = jsonl(os.path.join(a.out, "dp", f"{name}-r{r}", "metrics.jsonl"))
                if len(recs) < 2:
                    raise Missing(f"{name}-r{r}: fewer than 2 steps in metrics.jsonl")
                dts += [recs[i]["wall_s"] - recs[i - 1]["wall_s"] for i in range(1, len(recs))]
                last, r = recs[-1]["loss"], r + 1
            if not dts:
                raise Missing(f"no runs of {name}")
            rounds = r - 1
            med = statistics.median(dts)
            ips[name] = a.dp_batch / med
            rows.append([label, f"{ips[name]:.2f}", f"{med:.3f}",
                         " / ".join(f"{x:.2f}" for x in dts), f"{last:.4f}"])
        base = ips["np1x2-det"]
        for r, name in zip(rows, ips):
            r.insert(2, f"{ips[name] / base:.2f}")
        emit(f"`dfm train jobs/bench-fmnist-small.yaml` (global batch {a.dp_batch}), {rounds} "
             "round(s) in which the layouts take turns; images/s from the median of the per-step "
             "wall_s deltas of metrics.jsonl pooled over the rounds, each run's step 1 discarded "
             "as warm-up (so every step includes its reduction, clip, Adam and EMA). The same "
             "last loss in every row is the rank-count invariance of the deterministic reduction "
             "(overlap: within float rounding).")
        emit()
        emit(table(["layout", "img/s", "vs 1x2", "s/step (median)", "s/step (each, by round)",
                    "last loss"], rows))
        emit()
        summary["dp"] = ips
        txt = read(os.path.join(raw, "reduce.txt"))
        comp = float(grab(r"compute only.*step\s+([\d.]+) ms", txt, "compute-only step").group(1))
        rrows = []
        for m in re.finditer(r"^\s+(deterministic|overlap)\s+([\d.]+)MB \|\s+([\d.]+) ms,\s+"
                             r"([\d.]+) ms \|\s+([\d.]+) ms,\s+([\d.]+) ms,\s+(-?[\d.]+)% /\s+"
                             r"(-?[\d.]+)%", txt, re.M):
            rrows.append([m.group(1), f"{float(m.group(2)):.2f} MB", f"{m.group(4)} ms",
                          f"{m.group(6)} ms", f"{m.group(7)}%", f"{m.group(8)}%"])
        if not rrows:
            raise Missing("no rows in the bench_reduce output")
        n = grab(r"n=(\d+) \(([\d.]+) MB\)", txt, "size")
        emit(f"`mpirun -np 2 bin/bench/bench_reduce {n.group(1)}` ({n.group(2)} MB of "
             f"gradients, the fmnist-small model); fake backward {comp:.1f} ms per step; "
             "medians over steps of the max over ranks. comm = time from the end of the "
             "backward to the summed gradient when nothing overlaps; wait = what is left in "
             "reducer_finish when buckets start during the backward; hidden(wait) = 1 - "
             "wait/comm; hidden(step) = 1 - (overlapped step - compute-only step)/comm.")
        emit()
        emit(table(["mode", "bucket", "comm per step (blocking)", "wait left (overlapped)",
                    "hidden (wait)", "hidden (step)"], rrows))
        for r in rrows:
            if r[0] == "deterministic" and r[1].startswith("4.19"):
                summary["comm_det"] = (r[2], r[3], r[4])
            if r[0] == "overlap" and r[1].startswith("4.19"):
                summary["comm_ovl"] = (r[2], r[3], r[4])

    section("2. Data-parallel training throughput", dp)

    # ---- 3. parity ----------------------------------------------------------------------------
    def parity():
        def seeds_mean(prefix):
            """Per-step losses averaged over the seeds' runs (raw/<prefix>-<seed>.jsonl)."""
            runs = [jsonl(f) for f in sorted(glob.glob(os.path.join(raw, prefix + "-*.jsonl")))]
            runs = [r for r in runs if r]
            if not runs:
                raise Missing(f"no {prefix}-<seed>.jsonl in {raw}")
            n = min(len(r) for r in runs)
            return [{"loss": statistics.fmean(r[i]["loss"] for r in runs)} for i in range(n)], len(runs)

        d, nd = seeds_mean("parity-dfm")
        t, nt = seeds_mean("parity-torch")
        n = min(len(d), len(t))
        if n < a.last or len(d) != len(t):
            raise Missing(f"dfm ran {len(d)} steps, PyTorch {len(t)}; need {a.last}+ each")
        md = statistics.fmean(r["loss"] for r in d[-a.last:])
        mt = statistics.fmean(r["loss"] for r in t[-a.last:])
        # standard error of each mean, treating the steps' batch losses as independent draws:
        # the scale of the difference that noise alone produces
        se_d = statistics.stdev(r["loss"] for r in d[-a.last:]) / a.last ** 0.5 if a.last > 1 else 0
        se_t = statistics.stdev(r["loss"] for r in t[-a.last:]) / a.last ** 0.5 if a.last > 1 else 0
        rel = abs(md - mt) / mt
        ok = rel <= PARITY_TOL
        summary["parity"] = (md, mt, rel, ok)
        emit(f"quickstart job ({read(os.path.join(raw, 'quickstart-resolved.yaml')).splitlines()[0].lstrip('# ')}), "
             f"{n} steps from the same resolved spec (raw/quickstart-resolved.yaml), "
             f"losses averaged per step over {nd} seed(s) for dfm and {nt} for PyTorch: dfm "
             "`dfm train` vs tests/torch/train_quickstart.py (same U-Net, init scheme, schedule, "
             "t sampling, Adam, warm-up, clipping, batch; different random numbers).")
        emit()
        marks = sorted(s for s in {1, 10, 50, 100, n // 2, n - a.last, n} if 1 <= s <= n)
        win = max(1, min(10, a.last // 2))
        rows = []
        for s in marks:
            lo = max(0, s - win)
            rows.append([s, f"{d[s - 1]['loss']:.4f}", f"{t[s - 1]['loss']:.4f}",
                         f"{statistics.fmean(r['loss'] for r in d[lo:s]):.4f}",
                         f"{statistics.fmean(r['loss'] for r in t[lo:s]):.4f}"])
        emit(table(["step", "dfm loss", "PyTorch loss", f"dfm mean of {win} up to here",
                    f"PyTorch mean of {win} up to here"], rows))
        emit()
        emit(table([f"mean loss, steps {n - a.last + 1}..{n}", "dfm", "PyTorch",
                    "relative difference", "verdict (<= 5%)"],
                   [["", f"{md:.5f} ± {se_d:.5f}", f"{mt:.5f} ± {se_t:.5f}",
                     f"{rel * 100:.2f}% (noise: ± {(se_d ** 2 + se_t ** 2) ** 0.5 / mt * 100:.1f}%)",
                     ("PASS" if ok else "FAIL") + (" (quick: not judged)" if quick else "")]]))
        emit()
        emit("(± = standard error of the mean over those steps' batch losses; the noise figure "
             "is the standard error of the difference, relative to PyTorch's mean.)")

    section("3. Loss parity with PyTorch", parity)

    # ---- 4. sampling ------------------------------------------------------------------------
    def sample():
        res = {}
        for name in ("dfm-1x2", "dfm-2x1", "torch"):
            txt = read(os.path.join(raw, f"sample-{name}.txt"))
            m = grab(r"sample: (\d+) samples in ([\d.]+) s \(([\d.]+) samples/s\)", txt,
                     f"{name} sampling rate")
            tm = read(os.path.join(raw, f"sample-{name}.time"))
            rss = int(grab(r"maxrss_kb (\d+)", tm, "peak RSS").group(1))
            res[name] = dict(n=int(m.group(1)), s=float(m.group(2)), rate=float(m.group(3)), rss=rss)
        diff = grab(r"max \|dfm - torch\| (\S+)", read(os.path.join(raw, "sample-diff.txt")),
                    "sample difference").group(1)
        t = res["torch"]["rate"]
        rows = [[lab, f"{res[k]['rate']:.2f}", f"{res[k]['rate'] / t:.2f}" if k != "torch" else "1",
                 f"{res[k]['rss'] / 1024:.0f} MiB"]
                for k, lab in (("dfm-1x2", "dfm sample, 1 rank x 2 threads"),
                               ("dfm-2x1", "dfm sample, 2 ranks x 1 thread (coordinator)"),
                               ("torch", "PyTorch DDIM loop, 2 threads (inference_mode)"))]
        emit(f"{res['torch']['n']} samples of the fmnist-small U-Net, DDIM eta 0 from the same "
             "x_T and weights, wall time of the sampling (dfm: the whole coordinator run; "
             "PyTorch: its loop), peak RSS of each process (for 2 ranks: the largest rank's, "
             "as /usr/bin/time reports mpirun's children). Largest difference between the two "
             f"engines' samples: {diff}.")
        emit()
        emit(table(["engine", "images/s", "vs PyTorch", "peak RSS"], rows))
        summary["sample"] = max(res["dfm-1x2"]["rate"], res["dfm-2x1"]["rate"]) / t

    section("4. Sampling: dfm sample vs PyTorch", sample)

    # ---- summary ---------------------------------------------------------------------------
    emit("## Summary")
    emit()
    srows = []
    if "step_ratio_2" in summary:
        r = summary["step_ratio_2"]
        bd, bt = summary["busy_2"]
        contended = min(bd, bt) < 1.6
        srows.append(["training-step throughput dfm/PyTorch, 2 threads", ">= 1.5", f"{r:.2f}",
                      ("met" if r >= 1.5 else "NOT MET") +
                      (f" (contended: cores busy {bd:.2f} / {bt:.2f}; not conclusive, see the "
                       "1-thread row)" if contended else "")])
        r1 = summary["step_ratio_1"]
        srows.append(["training-step throughput dfm/PyTorch, 1 thread", ">= 1.5", f"{r1:.2f}",
                      "met" if r1 >= 1.5 else "NOT MET"])
        srows.append(["(forward, 2 threads)", "", f"{summary['fwd_ratio_2']:.2f}", ""])
        srows.append(["peak RSS dfm/PyTorch, training step, 2 threads", "<= 0.6",
                      f"{summary['rss_ratio_2']:.2f}",
                      "met" if summary["rss_ratio_2"] <= 0.6 else "NOT MET"])
        srows.append(["GEMM engine of dfm's layers", "", summary["gemm_used"], ""])
    for th in (1, 2):
        if f"large_{th}" in summary:
            sr, rr = summary[f"large_{th}"]
            srows.append([f"CIFAR-10 DDPM step dfm/PyTorch, {th} thread(s) (RSS ratio)", "",
                          f"{sr:.2f} ({rr:.2f})", ""])
    if "dp" in summary:
        ip = summary["dp"]
        srows.append(["2 ranks x 1 thread vs 1 rank x 2 threads (det / overlap)", "",
                      f"{ip['np2x1-det'] / ip['np1x2-det']:.2f} / "
                      f"{ip['np2x1-overlap'] / ip['np1x2-det']:.2f}", ""])
    for k, lab in (("comm_det", "deterministic"), ("comm_ovl", "overlap")):
        if k in summary:
            c = summary[k]
            srows.append([f"comm per step, {lab}, 4 MiB buckets (blocking -> overlapped wait)",
                          "", f"{c[0]} -> {c[1]} ({c[2]} hidden)", ""])
    if "sample" in summary:
        r = summary["sample"]
        srows.append(["sampling images/s dfm/PyTorch (best dfm layout, 2 cores)", ">= 2.0",
                      f"{r:.2f}", ("met" if r >= 2.0 else "NOT MET") +
                      (" (quick: not judged)" if quick else "")])
    if "parity" in summary:
        md, mt, rel, ok = summary["parity"]
        srows.append([f"loss agreement, mean of last {a.last} steps", "<= 5%",
                      f"{rel * 100:.2f}% ({md:.4f} vs {mt:.4f})",
                      ("PASS" if ok else "FAIL") + (" (quick: not judged)" if quick else "")])
    emit(table(["target", "goal", "measured", "verdict"], srows))
    for p in problems:
        emit(f"- MISSING: {p}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(text)
    print(f"(written to {os.path.join(a.out, 'report.md')})")
    if problems:
        return 1
    if not quick and "parity" in summary and not summary["parity"][3]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
