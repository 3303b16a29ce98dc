"""Trials as Ray tasks (`digitlab sweep --executor ray`): one task per trial on a Ray cluster.

Each trial trains on whichever node Ray picks, in a scratch folder of that node, and comes back to
the machine that started the sweep as a tar archive, unpacked into the sweep folder exactly where a
local sweep would have trained it: no shared file system is needed. Before any trial, every node is
checked for the digitlab and Keras versions of this machine, and fetches and verifies the sweep's
data sets into its own digitlab cache once (the data never travels through Ray's object store).

A task lost with its node is retried by Ray on another node (`RayOptions.max_retries`); the sweep
records each trial once, from the task's one result. Ctrl-C cancels the running tasks (their
trials are trained again next time) and keeps the finished ones.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from digitlab.errors import ClusterError, ConfigError, DigitlabError
from digitlab.sweeps.executors import OnOutcome, TrialJob, TrialOutcome, interrupts_deferred
from digitlab.sweeps.worker import Trainer, limit_threads

INSTALL_HINT = "pip install 'digitlab[ray]'"
# Shared memory for Ray's object store when the sweep starts a local Ray: only the trials' archives
# (a few MB each) pass through it, so Ray's default (30% of memory) would be waste.
LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024
# The packages whose versions must match on every node (their installed distribution names).
CHECKED_PACKAGES = ("digitlab", "keras")


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where and how a sweep's trials run on Ray."""

    # HOST:PORT of the cluster's head (`ray start --head` prints it); None: $RAY_ADDRESS, else a Ray
    # started on this machine for the sweep alone.
    address: str | None = None
    # CPUs Ray reserves for each trial (and the threads the trial trains with).
    cpus_per_trial: float = 1.0
    # GPUs per trial; None: 1 where the cluster has GPUs, else 0.
    gpus_per_trial: float | None = None
    # Times a trial is started again after its node or worker process was lost (not after an error).
    max_retries: int = 3

    def __post_init__(self) -> None:
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"--cpus-per-trial must be above 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial must be 0 or more, got {self.gpus_per_trial}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {self.max_retries}")


def import_ray():
    """Ray, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}") from err
    return ray


class RayExecutor:
    """Trains trials as Ray tasks (see the module's docstring); connects on first use, `close` lets go."""

    def __init__(self, options: RayOptions | None = None, backend: str | None = None,
                 data_root: str | Path | None = None) -> None:
        self.options = options or RayOptions()
        self.backend = backend
        # The data cache root on every node (None: each node's own default, $DIGITLAB_DATA or ~/.cache/digitlab).
        self.data_root = None if data_root is None else str(data_root)
        self._ray = import_ray()  # fail early, before any sweep file is written
        self._connected = False
        self._prepared: set[tuple[str, str]] = set()  # (node id, data set) fetched and verified there

    @property
    def parallel(self) -> int:
        """Trials the cluster trains at once: its CPUs over the CPUs per trial."""
        self._connect()
        cpus = self._ray.cluster_resources().get("CPU", 1)
        return max(1, math.floor(cpus / self.options.cpus_per_trial))

    def run(self, jobs: Sequence[TrialJob], on_outcome: OnOutcome) -> None:
        if not jobs:
            return
        ray = self._ray
        self._connect()
        self._prepare_data({job.trial.config.dataset for job in jobs})
        gpus = self.options.gpus_per_trial
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        # A fresh worker process per trial (max_calls=1), as a local sweep's: every trial starts alike.
        task = ray.remote(max_calls=1)(train_on_node).options(
            num_cpus=self.options.cpus_per_trial, num_gpus=gpus, max_retries=self.options.max_retries,
            retry_exceptions=False)
        threads = max(1, math.floor(self.options.cpus_per_trial))
        pending = {task.remote(job.trainer, job.trial.config.to_dict(), job.trial.name, self.backend,
                               self.data_root, threads): job for job in jobs}
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for reference in finished:
                    job = pending.pop(reference)
                    result = self._result(reference, job)
                    with interrupts_deferred():  # the trial's folder and its record, whole
                        unpack_folder(result["archive"], job.run_dir)
                        on_outcome(job, TrialOutcome(result["status"], result["node"]))
        except BaseException:
            for reference in pending:  # Ctrl-C or an error: stop what still runs; finished trials are kept
                ray.cancel(reference, force=True)
            raise

    def close(self) -> None:
        if self._connected:
            self._ray.shutdown()
            self._connected = False

    # --- connecting and checking the nodes ------------------------------------------------------

    def _connect(self) -> None:
        if self._connected:
            return
        ray = self._ray
        address = self.options.address or os.environ.get("RAY_ADDRESS") or None
        quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
        try:
            if address:
                ray.init(address=address, **quiet)
            else:  # "local": a new Ray for this sweep, even when `ray start` runs on this machine
                ray.init(address="local", num_cpus=os.cpu_count(), object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                         include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise ClusterError(f"cannot connect to {where}: {str(err).splitlines()[0] if str(err) else err}; start "
                               "the head with `ray start --head` and pass the address it prints with --address "
                               "(or leave --address and $RAY_ADDRESS out for a Ray on this machine)") from err
        self._connected = True
        try:
            check_versions(self._node_reports(), local_versions())
        except BaseException:
            self.close()
            raise

    def _alive_nodes(self) -> list[dict[str, Any]]:
        return [node for node in self._ray.nodes() if node.get("Alive")]

    def _on_node(self, function, node_id: str, *arguments):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        return self._ray.remote(function).options(num_cpus=0, scheduling_strategy=strategy,
                                                  max_retries=0).remote(*arguments)

    def _node_reports(self) -> list[dict[str, Any]]:
        """What each living node has installed (the report's function needs no digitlab to run)."""
        nodes = self._alive_nodes()
        references = [self._on_node(_installed_versions_function(), node["NodeID"], CHECKED_PACKAGES)
                      for node in nodes]
        reports = []
        for node, reference in zip(nodes, references, strict=True):
            report = self._ray.get(reference)
            reports.append({**report, "node_id": node["NodeID"], "address": node.get("NodeManagerAddress", "?")})
        return reports

    def _prepare_data(self, names: Iterable[str]) -> None:
        """Each living node fetches and verifies each data set into its own cache, once per sweep."""
        work = []
        for node in self._alive_nodes():
            for name in sorted(names):
                if (node["NodeID"], name) not in self._prepared:
                    work.append((node, name, self._on_node(prepare_dataset, node["NodeID"], name, self.data_root)))
        for node, name, reference in work:
            try:
                self._ray.get(reference)
            except self._ray.exceptions.RayTaskError as err:
                raise _digitlab_cause(err, f"node {node_label(node)} could not prepare {name}") from err
            self._prepared.add((node["NodeID"], name))

    def _result(self, reference, job: TrialJob) -> dict[str, Any]:
        ray = self._ray
        try:
            return ray.get(reference)
        except ray.exceptions.RayTaskError as err:
            raise _digitlab_cause(err, f"trial {job.trial.name} failed") from err
        except ray.exceptions.RayError as err:  # its node or worker lost more often than max_retries
            raise ClusterError(f"trial {job.trial.name} was lost {self.options.max_retries + 1} times "
                               f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); check the "
                               "cluster's nodes (`ray status`), then run the same command again to go on") from err


# --- what runs on the nodes ------------------------------------------------------------------------


def train_on_node(trainer: Trainer, config: dict[str, Any], name: str, backend: str | None, data_root: str | None,
                  threads: int) -> dict[str, Any]:
    """A Ray task: train one trial into a scratch folder of this node; return its status, node and archive."""
    limit_threads(threads)  # before Keras is imported: this worker process is fresh (max_calls=1)
    scratch = Path(tempfile.mkdtemp(prefix="digitlab-trial-"))
    try:
        run_dir = scratch / name
        status = trainer(config, str(run_dir), backend, data_root)
        return {"status": status, "node": node_label(), "archive": pack_folder(run_dir)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def prepare_dataset(name: str, data_root: str | None) -> str:
    """A Ray task: fetch and verify a data set into this node's digitlab cache; return the cache folder."""
    from digitlab.data import datasets

    return str(datasets.fetch(name, root=data_root).directory)


def node_label(node: dict[str, Any] | None = None) -> str:
    """'HOST (node 1a2b3c4d5e6f)': the machine and the Ray node, as sweep.csv's `node` column shows them.

    Without `node`: this process's own (inside a Ray task).
    """
    if node is None:
        import ray

        return f"{socket.gethostname()} (node {ray.get_runtime_context().get_node_id()[:12]})"
    host = node.get("host") or node.get("NodeManagerHostname") or node.get("NodeManagerAddress", "?")
    return f"{host} (node {node.get('node_id', node.get('NodeID', '?'))[:12]})"


def _installed_versions_function():
    """The version report, made inside a function so that Ray sends it by value: a node without digitlab
    can run it and say so, instead of failing to unpickle a digitlab function."""

    def installed_versions(packages):
        import importlib.metadata
        import platform
        import socket

        found = {}
        for package in packages:
            try:
                found[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                found[package] = None
        return {"host": socket.gethostname(), "python": platform.python_version(), "versions": found}

    return installed_versions


def local_versions() -> dict[str, str | None]:
    """This machine's versions of the checked packages."""
    import importlib.metadata

    found: dict[str, str | None] = {}
    for package in CHECKED_PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def check_versions(reports: Sequence[dict[str, Any]], expected: dict[str, str | None]) -> None:
    """Raise ClusterError naming every node whose digitlab or Keras differs from `expected` (or is missing)."""
    problems = []
    for report in reports:
        found = report["versions"]
        if found == expected:
            continue
        installed = ", ".join(f"{package} {found.get(package) or 'not installed'}" for package in expected)
        problems.append(f"node {node_label(report)} at {report.get('address', '?')} has {installed}")
    if problems:
        wanted = ", ".join(f"{package} {version or 'not installed'}" for package, version in expected.items())
        pins = " ".join(f"'{package}=={version}'" for package, version in expected.items() if version)
        raise ClusterError(f"{'; '.join(problems)}; this machine has {wanted}. Install the same versions on every "
                           f"node (pip install {pins} 'ray[default]'), restart its `ray start`, then run the sweep "
                           "again")


# --- trial folders as archives ------------------------------------------------------------------


def pack_folder(folder: Path) -> bytes:
    """A run folder as an uncompressed tar archive (its model.keras is compressed already)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def unpack_folder(data: bytes, destination: Path) -> None:
    """Unpack `pack_folder`'s archive as the new folder `destination`, all at once (a rename), never over one."""
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.incoming-", dir=destination.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(staging, filter="data")  # regular files inside `staging` only
        staging.chmod(0o755)  # mkdtemp's folders are private; run folders are ordinary folders
        os.rename(staging, destination)  # fails if `destination` exists: nothing is overwritten
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _digitlab_cause(err: Exception, context: str) -> Exception:
    """A Ray task's error as digitlab's own (same class and exit status), its message led by `context`."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, DigitlabError):
        try:
            return type(cause)(f"{context}: {cause}")
        except TypeError:
            return cause
    first_line = str(cause or err).strip().splitlines()
    return ClusterError(f"{context}: {type(cause or err).__name__}: {first_line[-1] if first_line else ''}")
