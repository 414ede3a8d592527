"""NCCL collective microbenchmarks, one process per GPU (torch.multiprocessing.spawn).

NVLink multicast (NVLS) stays OFF: the variables below are set in os.environ before
the process group starts, in the parent and in every child.  Works for any number of
ranks (2, 4, 8).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

NO_MULTICAST_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}

try:
    from .mb_common import CsvTable, Progress, percentile
    from .mb_grids import busbw, collectives_grid
except ImportError:
    from mb_common import CsvTable, Progress, percentile
    from mb_grids import busbw, collectives_grid


def set_no_multicast_env() -> None:
    for k, v in NO_MULTICAST_ENV.items():
        os.environ[k] = v


GRAPH_MAX_BYTES = 16 * 1024 ** 2
GRAPH_CALLS = 20


def _event_times(fn, reps: int, torch) -> list[float]:
    """Seconds of each of ``reps`` eager calls, by CUDA events around each call."""
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for a, b in ev:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    return [a.elapsed_time(b) / 1e3 for a, b in ev]


def _graph_time(fn, dist, torch) -> float:
    """Median seconds per call of GRAPH_CALLS calls of ``fn`` captured in one CUDA graph."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(GRAPH_CALLS):
                fn()
        g.replay()
        torch.cuda.synchronize()
        ts = []
        for _ in range(7):
            dist.barrier()
            torch.cuda.synchronize()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            g.replay()
            b.record()
            torch.cuda.synchronize()
            ts.append(a.elapsed_time(b) / 1e3 / GRAPH_CALLS)
        del g
        return float(sorted(ts)[len(ts) // 2])
    except Exception as e:  # noqa: BLE001
        print(f"[collectives] graph capture failed: {type(e).__name__}: {str(e)[:150]}", flush=True)
        return float("nan")


def _done_everywhere(table, row: dict, rank: int, dev, dist, torch) -> bool:
    """Rank 0 owns the CSV: whether ``row`` is already measured there, broadcast to every rank."""
    flag = torch.tensor([1 if rank == 0 and table.has(row) else 0], device=dev)
    dist.broadcast(flag, 0)
    return bool(flag.item())


def _write_worst(table, row: dict, ts: list, ok: float, t_graph: float, bw_op: str, world: int, reps: int,
                 rank: int, dev, dist, torch) -> bool:
    """The slowest rank's (median, p10, p90, graph time) of one point; rank 0 writes the row if every rank
    succeeded. Returns whether every rank succeeded (the same answer on every rank)."""
    stats = torch.tensor([percentile(ts, 50), percentile(ts, 10), percentile(ts, 90), -ok, t_graph],
                         device=dev, dtype=torch.float64)
    dist.all_reduce(stats, op=dist.ReduceOp.MAX)
    t, p10, p90, failed, tg = stats.tolist()
    if failed >= 0:
        return False
    if rank == 0:
        alg, bus = busbw(bw_op, row["bytes"], world, t)
        table.write({**row, "time_s": t, "time_p10_s": p10, "time_p90_s": p90, "busbw_bytes_per_s": bus,
                     "algbw_bytes_per_s": alg, "repeats": reps, "time_graph_s": tg})
    return True


def _worker(rank: int, world: int, out_dir: str, quick: bool, resume: bool, port: int,
            progress: bool, sys_path: list):
    set_no_multicast_env()
    for p in sys_path:
        if p not in sys.path:
            sys.path.append(p)
    import torch
    import torch.distributed as dist

    import time

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(rank)
        dev = torch.device("cuda", rank)
        dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, device_id=dev)
        gpu = torch.cuda.get_device_name(rank)
    else:  # CPU/gloo: only to test the flow without GPUs
        dev = torch.device("cpu")
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
        gpu = "cpu-gloo"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    # rank 0 owns the CSV and decides (broadcast) which points are already done
    table = CsvTable(Path(out_dir), "collectives", resume=resume) if rank == 0 else None
    pts = collectives_grid(world, quick)
    prog = Progress("collectives", len(pts), enabled=(progress and rank == 0))
    for pt in pts:
        row = {"gpu": gpu, **pt}
        if _done_everywhere(table, row, rank, dev, dist, torch):
            prog.step(skipped=True)
            continue
        nbytes = pt["bytes"]
        ne = nbytes // 2
        op = pt["op"]
        x = torch.randn(ne, device=dev, dtype=torch.bfloat16) + 1.0
        if op == "all_gather":
            out = torch.empty(ne * world, device=dev, dtype=torch.bfloat16)
            fn = lambda: dist.all_gather_into_tensor(out, x)  # noqa: E731
        elif op == "reduce_scatter":
            out = torch.empty(ne // world, device=dev, dtype=torch.bfloat16)
            fn = lambda: dist.reduce_scatter_tensor(out, x)  # noqa: E731
        elif op == "all_to_all":
            out = torch.empty_like(x)
            fn = lambda: dist.all_to_all_single(out, x)  # noqa: E731
        elif op == "broadcast":
            fn = lambda: dist.broadcast(x, 0)  # noqa: E731
        else:
            fn = lambda: dist.all_reduce(x)  # noqa: E731
        reps = 30 if nbytes <= 4 * 1024 ** 2 else (10 if nbytes <= 64 * 1024 ** 2 else 5)
        try:
            for _ in range(3):
                fn()
            sync()
            dist.barrier()
            if cuda:
                ts = _event_times(fn, reps, torch)
            else:
                ts = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t0)
            ok = 1.0
        except Exception as e:  # noqa: BLE001  (e.g. an op the backend lacks)
            print(f"[collectives] rank {rank} {op} {nbytes}: {type(e).__name__}: {str(e)[:150]}",
                  flush=True)
            ts, ok = [float("nan")], 0.0
        # The same call captured GRAPH_CALLS times in one CUDA graph and replayed: the device-side time
        # per collective without the host launching each eager call (engines capture their decode
        # iterations, all-reduces included).  Small and mid messages only; NaN where capture fails.
        t_graph = float("nan")
        if cuda and ok and nbytes <= GRAPH_MAX_BYTES:
            t_graph = _graph_time(fn, dist, torch)
        _write_worst(table, row, ts, ok, t_graph, op, world, reps, rank, dev, dist, torch)
        prog.step()
        del x
    if cuda:
        _custom_all_reduce(rank, world, dev, table, gpu, quick, dist, torch)
    if rank == 0:
        table.close()
    dist.barrier()
    dist.destroy_process_group()


CUSTOM_AR_OPS = {"all_reduce_one_shot": "one_shot_all_reduce", "all_reduce_two_shot": "two_shot_all_reduce_"}
CUSTOM_AR_MAX_BYTES = 8 * 1024 ** 2  # vLLM's custom all-reduce serves messages up to 8 MB by default


def _custom_all_reduce(rank, world, dev, table, gpu, quick, dist, torch) -> None:
    """Engine-style all-reduce over peer-to-peer symmetric memory (torch.ops.symm_mem one-shot and
    two-shot: each rank reads the peers' buffers over NVLink, no NCCL, no multicast), the analogue of
    vLLM's custom all-reduce for small TP messages.  Rows ``all_reduce_one_shot`` / ``_two_shot``;
    ``time_graph_s`` is the CUDA-graph replay time per call.  Skipped where symmetric memory is absent."""
    try:
        import torch.distributed._symmetric_memory as symm_mem
        group_name = dist.group.WORLD.group_name
    except Exception as e:  # noqa: BLE001
        if rank == 0:
            print(f"[collectives] no symmetric memory: {type(e).__name__}: {str(e)[:120]}", flush=True)
        return
    try:
        from .mb_grids import COLL_SIZES_FULL, COLL_SIZES_QUICK
    except ImportError:
        from mb_grids import COLL_SIZES_FULL, COLL_SIZES_QUICK
    sizes = [b for b in (COLL_SIZES_QUICK if quick else COLL_SIZES_FULL) if b <= CUSTOM_AR_MAX_BYTES]
    for op, fn_name in CUSTOM_AR_OPS.items():
        for nbytes in sizes:
            row = {"gpu": gpu, "op": op, "ranks": world, "bytes": nbytes}
            if _done_everywhere(table, row, rank, dev, dist, torch):
                continue
            ok, ts, tg = 1.0, [float("nan")], float("nan")
            try:
                buf = symm_mem.empty(nbytes // 2, dtype=torch.bfloat16, device=dev)
                symm_mem.rendezvous(buf, dist.group.WORLD)
                buf.copy_(torch.randn(nbytes // 2, device=dev, dtype=torch.bfloat16))
                op_fn = getattr(torch.ops.symm_mem, fn_name)
                fn = (lambda: op_fn(buf, "sum", group_name))  # noqa: E731
                for _ in range(3):
                    fn()
                torch.cuda.synchronize()
                dist.barrier()
                ts = _event_times(fn, 20, torch)
                tg = _graph_time(fn, dist, torch)
            except Exception as e:  # noqa: BLE001
                ok = 0.0
                print(f"[collectives] rank {rank} {op} {nbytes}: {type(e).__name__}: {str(e)[:150]}", flush=True)
            all_ok = _write_worst(table, row, ts, ok, tg, "all_reduce", world, 20, rank, dev, dist, torch)
            dist.barrier()
            if not all_ok:
                break  # a rank failed this op: its larger sizes would fail alike (every rank decides the same)


def run_collectives(out_dir: Path, quick: bool = False, resume: bool = True,
                    progress: bool = True, ranks: int | list[int] | None = None) -> int:
    """Measure at ``ranks`` participants (a count or a list of counts; default: every GPU)."""
    if isinstance(ranks, (list, tuple)):
        done = 0
        for r in ranks:
            done = max(done, run_collectives(out_dir, quick, resume, progress, int(r)))
        return done
    set_no_multicast_env()
    import socket

    import torch
    import torch.multiprocessing as mp

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    n = ranks or torch.cuda.device_count()
    if n > torch.cuda.device_count() and torch.cuda.is_available():
        raise ValueError(f"--ranks {n}: this machine has {torch.cuda.device_count()} GPUs")
    if n < 2:
        print("[collectives] fewer than 2 GPUs: skipped", flush=True)
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(n, str(out_dir), quick, resume, port, progress, list(sys.path)),
             nprocs=n, join=True)
    return n
