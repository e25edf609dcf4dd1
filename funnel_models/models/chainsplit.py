"""Half of a JAX fit's chains sampled in a second Python process, beside the first.

nutpie calls a JAX graph from Python for every gradient, so in one process its chains
take turns on one thread (:mod:`.sampling`), and a 2-core machine samples on one core. A
second interpreter has no such wait. :class:`SecondProcess` hands the graph (pickled with
cloudpickle, its data in it) to a worker (a ``python`` running :func:`_serve`), which
compiles and samples its chains while this process samples the others, and
:func:`merge_chains` joins the two halves into one posterior.

The worker is started on first use and serves every later fit of this process (starting
it, importing PyMC, nutpie and JAX, takes ~5 s); it ends when this process does (its
standard input closes). A plain subprocess rather than :mod:`multiprocessing`: a spawned
child re-imports the caller's ``__main__``, which runs a user's unguarded script twice.
Jobs and results travel through files in a private temporary folder; a job's files are
removed when its result is read. Measurements are in ARCHITECTURE.md.
"""
from __future__ import annotations

import atexit
import itertools
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .config import SamplerConfig

__all__ = ["processes_for", "child_seed", "sample_options", "JAX_COMPILE", "SecondProcess", "merge_chains", "ChainProcessError"]

#: Below this many iterations (chains x (draws + tuning)) a second process costs more
#: than it saves: starting it (importing PyMC, nutpie and JAX, ~5 s) and compiling the
#: graph again (1-10 s) run beside this process's own compilation, and sampling ~4,000
#: iterations of the demo's graphs takes 10-20 s on one core.
MIN_ITERATIONS = 4000


class ChainProcessError(RuntimeError):
    """The second sampling process failed; its standard error is in the message."""


def processes_for(config: SamplerConfig) -> int:
    """How many processes sample a JAX fit's chains under ``config`` (1 or 2).

    ``processes: auto`` is 2 when the machine lets this process use at least two cores,
    there are at least two chains and the fit is long enough to repay the second start
    (:data:`MIN_ITERATIONS`); a number is taken as given (at most the number of chains).
    """
    if config.processes != "auto":
        return max(1, min(int(config.processes), 2, config.chains))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    big = config.chains * (config.draws + config.tune) >= MIN_ITERATIONS
    return 2 if cores >= 2 and config.chains >= 2 and big else 1


#: How nutpie compiles a JAX graph here and in the worker: the data stay arguments of the
#: compiled functions (not frozen in), so other data can be swapped in.
JAX_COMPILE = {"backend": "jax", "gradient_backend": "jax", "freeze_model": False}


def sample_options(config: SamplerConfig, chains: int, seed: int) -> dict[str, Any]:
    """``nutpie.sample`` arguments of ``chains`` chains under ``config``: the same in this
    process and in the worker, so the two halves of a fit are sampled alike."""
    return {"draws": config.draws, "tune": config.tune, "chains": chains, "seed": seed, "save_warmup": False,
            "low_rank_modified_mass_matrix": config.low_rank, "target_accept": config.target_accept}


def child_seed(seed: int) -> int:
    """The second process's seed: derived from the fit's seed, so the chains are
    reproducible, and unlike any seed a user would pick for another fit's first half."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


class _Worker:
    """The second process and its folder; one per process (:func:`_worker`)."""

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="funnel-chains-", ignore_cleanup_errors=True)
        self.errors = Path(self.folder.name) / "stderr.txt"
        # the package is found as this process found it, also when a notebook added its
        # folder to sys.path (appended: it never shadows what the interpreter finds first)
        here = str(Path(__file__).resolve().parents[2])
        start = (f"import sys; sys.path.append({here!r}); from {__name__} import _serve; "
                 f"sys.exit(_serve({self.folder.name!r}))")
        # a session of its own: a Ctrl-C or a signal to this process's group (a notebook
        # kernel being shut down) does not reach it; it ends when its input closes
        with self.errors.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", start], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, start_new_session=True,
                                         env=dict(os.environ, PYTHONWARNINGS="ignore"))
        self.jobs = itertools.count()
        atexit.register(self.close)

    def error_tail(self) -> str:
        """The last lines the worker wrote to its standard error."""
        text = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return " | ".join(text.strip().splitlines()[-5:])

    def close(self, kill: bool = False) -> None:
        """End the worker: close its input, which ends its loop (a worker still busy after
        5 s, or any when ``kill``, is killed), and remove its folder."""
        if self.proc.poll() is None:
            try:
                if kill:
                    raise OSError
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:                                 # a broken pipe: nothing left to send
                pass
        self.folder.cleanup()


_WORKER: _Worker | None = None


def _worker() -> _Worker:
    """This process's worker, started when there is none or the last one ended."""
    global _WORKER
    if _WORKER is None or _WORKER.proc.poll() is not None:
        if _WORKER is not None:
            _WORKER.close()
        _WORKER = _Worker()
    return _WORKER


class SecondProcess:
    """Sample ``chains`` chains of ``model`` (a PyMC graph with static shapes) in the worker.

    The job is handed over in the constructor; :meth:`result` waits for it and returns its
    InferenceData, or raises :class:`ChainProcessError`; :meth:`stop` abandons it.
    """

    def __init__(self, model: Any, config: SamplerConfig, chains: int, seed: int) -> None:
        import cloudpickle
        self._worker = _worker()
        self._job = Path(self._worker.folder.name) / f"job{next(self._worker.jobs)}.pkl"
        with self._job.open("wb") as fh:
            cloudpickle.dump({"model": model, "options": sample_options(config, chains, seed)}, fh)
        try:
            assert self._worker.proc.stdin is not None
            self._worker.proc.stdin.write(f"{self._job}\n".encode())
            self._worker.proc.stdin.flush()
        except OSError:
            pass                                            # reported by result(): the worker has ended

    def result(self) -> Any:
        """The worker's InferenceData for this job (waits for it)."""
        out = self._job.with_suffix(".out")
        try:
            answer = self._answer()
            if answer is None:                              # no answer: the worker has ended
                tail = self._worker.error_tail() or "no message"
                self._worker.close(kill=True)
                raise ChainProcessError(f"the second sampling process failed: it ended ({tail})")
            if answer != "ok" or not out.exists():
                raise ChainProcessError(f"the second sampling process failed: {answer}")
            with out.open("rb") as fh:
                return pickle.load(fh)
        finally:
            self._job.unlink(missing_ok=True)
            out.unlink(missing_ok=True)

    def _answer(self) -> str | None:
        """The worker's answer to this job (answers to jobs abandoned earlier are skipped),
        or None when it ended first."""
        assert self._worker.proc.stdout is not None
        for raw in self._worker.proc.stdout:
            job, _, answer = raw.decode(errors="replace").rstrip("\n").partition("\t")
            if job == str(self._job):
                return answer
        return None

    def stop(self) -> None:
        """Abandon the job (this process's own sampling failed): the worker is ended."""
        self._worker.close(kill=True)


def merge_chains(first: Any, second: Any) -> Any:
    """One InferenceData with the chains of ``first`` followed by those of ``second``."""
    import arviz as az
    n = first.posterior.sizes["chain"]
    shifted = second.assign_coords(chain=np.arange(n, n + second.posterior.sizes["chain"]),
                                   groups=[g for g in second.groups() if "chain" in second[g].dims])
    return az.concat(first, shifted, dim="chain")


def _run(job: Path) -> None:
    """Compile and sample one job; the result is written next to it."""
    import nutpie
    with job.open("rb") as fh:
        spec: Mapping[str, Any] = pickle.load(fh)
    compiled = nutpie.compile_pymc_model(spec["model"], **JAX_COMPILE)
    idata = nutpie.sample(compiled, cores=1, progress_bar=False, **spec["options"])
    part = job.with_suffix(".part")
    with part.open("wb") as fh:
        pickle.dump(idata, fh)
    part.replace(job.with_suffix(".out"))


def _serve(folder: str) -> int:
    """The worker's loop: a job's path per input line; per job a line with its path, a
    tab and ``ok`` or ``error ...``. When its input closes (the fitting process ended,
    however it ended), it removes ``folder``, the jobs' and its own."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)                       # anything else printed goes to the error log, not the answers
    try:
        for line in sys.stdin:
            job = line.rstrip("\n")
            try:
                _run(Path(job))
                answer = "ok"
            except Exception as exc:    # the parent samples these chains itself and says why
                answer = f"error {type(exc).__name__}: {str(exc)[:300]}".replace("\n", " ")
            answers.write(f"{job}\t{answer}\n")
            answers.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0
