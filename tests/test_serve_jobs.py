"""Training jobs over HTTP: real tiny `genlab train` workers started, streamed, cancelled, resumed and adopted by a
new server; and every bad request refused in the one error shape."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from genlab.runfiles import CHECKPOINT_FILE, MODEL_FILE, SUMMARY_FILE
from genlab.serve import errors
from genlab.serve.config import ServeConfig
from genlab.serve.jobs import JobManager, router
from genlab.serve.jobs_store import alive, shipped_configs
from genlab.train.checkpoint import checkpoint_step

QUICK = ["train.eval_batches=1", "train.log_every=1", "train.threads=1", "release.track_energy=false"]
GPT_TINY = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16", "train.batch_size=4",
            "train.precision=fp32", "train.max_steps=6", "train.eval_every=6", *QUICK]
TVAE = ["train.eval_every=0", *QUICK]  # tvae on diabetes: the quickest step-based family on a registered dataset


def make(tmp_path, start=True, **settings):
    config = ServeConfig(runs=tmp_path / "runs", **settings)
    manager = JobManager(config)
    if start:
        manager.start()
    app = FastAPI()
    errors.install(app)
    app.include_router(router(manager))
    return manager, TestClient(app)


def wait(manager, job_id, until, timeout=90.0):
    """Poll the job until ``until(job)`` holds; the job then."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        job = manager.get(job_id)
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting: {job}")


def done(job):
    return job["status"] in ("succeeded", "failed", "cancelled", "interrupted")


def post(client, status=201, **body):
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_a_job_trains_streams_its_progress_and_a_bad_setting_fails_in_one_line(tmp_path):
    manager, client = make(tmp_path, max_jobs=2)
    try:
        job = post(client, family="gpt", data="shakespeare", name="tiny", set=GPT_TINY)
        bad = post(client, family="gpt", data="shakespeare", set=["train.nonsense=1", *QUICK])
        assert job["status"] in ("queued", "running") and job["object"] == "training.job" and job["max_steps"] == 6
        assert bad["run"].startswith("gpt-shakespeare-")  # the default name
        # Run: follow the job's events until the stream ends
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        events = [json.loads(line[6:]) for line in lines[:-1]]
        assert lines[-1] == "data: [DONE]" and events and events[-1]["status"] == "succeeded"
        assert len({json.dumps(e) for e in events}) == len(events)  # an event only when something changed
        # Assert: succeeded with its metrics; the failing one says genlab's one-line error
        job = client.get(f"/v1/jobs/{job['id']}").json()
        assert job["exit_code"] == 0 and job["error"] is None and job["finished_at"] >= job["started_at"]
        assert job["metrics"]["step"] == 6 and job["metrics"]["train_loss"] > 0 and "val_loss" in job["metrics"]
        assert (tmp_path / "runs" / "tiny" / MODEL_FILE).is_file()
        assert (tmp_path / "runs" / job["log"]).is_file()
        bad = wait(manager, bad["id"], done)
        assert bad["status"] == "failed" and bad["exit_code"] == 2 and "nonsense" in bad["error"]
        assert "\n" not in bad["error"] and not bad["error"].startswith("error")
        listed = client.get("/v1/jobs").json()
        assert listed["object"] == "list" and {j["id"] for j in listed["data"]} == {job["id"], bad["id"]}
        with client.stream("GET", f"/v1/jobs/{bad['id']}/events") as r:  # a finished job: itself, then [DONE]
            assert [line for line in r.iter_lines() if line][-1] == "data: [DONE]"
    finally:
        manager.stop()


def test_cancel_checkpoints_queued_jobs_wait_and_resume_continues(tmp_path):
    manager, client = make(tmp_path, max_jobs=1)
    try:
        long = post(client, family="tvae", data="diabetes", name="long",
                    set=["train.max_steps=10000000", "train.checkpoint_every=1000000", *TVAE])
        second = post(client, family="tvae", data="diabetes", name="second", set=["train.max_steps=5", *TVAE])
        wait(manager, long["id"], lambda j: (j["metrics"].get("step") or 0) >= 3 or done(j))
        # Assert: one slot, so the second waits; cancelling it is at once
        assert manager.get(second["id"])["status"] == "queued"
        r = client.delete(f"/v1/jobs/{second['id']}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        # Run: cancel the running one; it finishes its step and checkpoints
        r = client.delete(f"/v1/jobs/{long['id']}")
        assert r.status_code == 200 and r.json()["cancel_requested"]
        long = wait(manager, long["id"], done)
        assert long["status"] == "cancelled" and long["exit_code"] == 143 and long["error"] is None
        step = checkpoint_step(tmp_path / "runs" / "long" / CHECKPOINT_FILE)
        assert step is not None and step >= 3 and not alive(long["pid"], None)
        assert client.delete(f"/v1/jobs/{long['id']}").json()["status"] == "cancelled"  # again: nothing changes
        assert manager.get(second["id"])["started_at"] is None  # never started
        # Run: a new job continues the run from its checkpoint
        post(client, 409, family="tvae", data="diabetes", name="long")
        more = post(client, family="tvae", data="diabetes", name="long", resume=True,
                    set=[f"train.max_steps={step + 3}", *TVAE])
        more = wait(manager, more["id"], done)
        assert more["status"] == "succeeded", more
        assert more["metrics"]["step"] == step + 3 and more["max_steps"] == step + 3
        r = client.delete(f"/v1/jobs/{more['id']}")
        assert r.status_code == 409 and r.json()["error"]["type"] == "conflict_error"
    finally:
        manager.stop()


CRASHING_SERVER = """
import os, sys, time
from pathlib import Path
from genlab.serve.config import ServeConfig
from genlab.serve.jobs import JobManager
manager = JobManager(ServeConfig(runs=Path(sys.argv[1]), max_jobs=2))
manager.start()
job = manager.submit({"family": "tvae", "data": "diabetes", "name": "orphan", "set": sys.argv[2:]})
while manager.get(job["id"])["pid"] is None:
    time.sleep(0.05)
print(job["id"], flush=True)
os._exit(0)  # a server that dies: no stop(), its worker goes on
"""


def test_jobs_outlive_their_server_and_a_new_one_adopts_them(tmp_path):
    runs = tmp_path / "runs"
    budget = ["train.max_steps=100000000", "train.max_minutes=0.02", "train.checkpoint_every=1000000", *TVAE]
    # Setup: a server process that starts a job and dies
    out = subprocess.run([sys.executable, "-c", CRASHING_SERVER, str(runs), *budget], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    orphan_id = out.stdout.split()[-1]
    # Run: a server in this process adopts it, starts another job, and stops (its worker goes on)
    first, client = make(tmp_path, max_jobs=2)
    mine = post(client, family="tvae", data="diabetes", name="mine", set=budget)
    mine = wait(first, mine["id"], lambda j: j["pid"] is not None)
    first.stop()
    orphan = first.get(orphan_id)
    assert orphan["status"] == "running" and alive(orphan["pid"], None) and alive(mine["pid"], None)
    # Run: a new server on the same runs folder adopts both and sees them finish
    second, client = make(tmp_path, max_jobs=2)
    try:
        mine = wait(second, mine["id"], done)
        orphan = wait(second, orphan_id, done)
    finally:
        second.stop()
    # Assert: its own child's exit code is known; the other one's end is read from its run folder
    assert mine["status"] == "succeeded" and mine["exit_code"] == 0, mine
    assert orphan["status"] == "succeeded" and orphan["exit_code"] is None, orphan
    assert (runs / "orphan" / SUMMARY_FILE).is_file() and orphan["metrics"]["step"] > 0
    assert not alive(orphan["pid"], None) and not alive(mine["pid"], None)
    with pytest.raises(ChildProcessError):  # reaped: no zombie is left
        os.waitpid(mine["pid"], os.WNOHANG)


@pytest.mark.parametrize("body, status, param, says", [
    ({"family": "gtp", "data": "shakespeare"}, 400, "family", "did you mean 'gpt'"),
    ({"family": "gpt", "data": "/etc/passwd"}, 400, "data", "only on registered datasets"),
    ({"family": "gpt", "data": "../runs/x"}, 400, "data", "only on registered datasets"),
    ({"family": "gpt", "data": "shakespear"}, 400, "data", "did you mean 'shakespeare'"),
    ({"family": "gpt", "data": "shakespeare", "name": "../x"}, 400, "name", "run folder name"),
    ({"family": "gpt", "data": "shakespeare", "name": "a/b"}, 400, "name", "run folder name"),
    ({"family": "gpt", "data": "shakespeare", "name": "a..b"}, 400, "name", "run folder name"),
    ({"family": "gpt", "data": "shakespeare", "name": ".hidden"}, 400, "name", "run folder name"),
    ({"family": "gpt", "data": "shakespeare", "epochs": 3}, 400, "epochs", "not a field"),
    ({"family": "gpt", "data": "shakespeare", "config": "/tmp/evil.toml"}, 400, "config", "not a path"),
    ({"family": "gpt", "data": "shakespeare", "config": "demo.toml"}, 400, "config", "not a path"),
    ({"family": "gpt", "data": "shakespeare", "config": "dmeo"}, 400, "config", "did you mean 'demo'"),
    ({"family": "gpt", "data": "shakespeare", "set": ["max_steps=3"]}, 400, "set.0", "section.key=value"),
    ({"family": "gpt", "data": "shakespeare", "set": ["train.x=" + "1" * 300]}, 400, "set.0", "at most 200"),
    ({"family": "gpt", "data": "shakespeare", "set": ["a.b=1"] * 33}, 400, "set", "at most 32"),
    ({"family": "ctgan", "data": "diabetes", "set": ["data.metadata=/etc/passwd"]}, 400, "set.0", "no file paths"),
    ({"family": "gpt", "data": "shakespeare", "resume": True}, 400, "name", "resume needs name"),
    ({"family": "gpt", "data": "shakespeare", "name": "nothing", "resume": True}, 400, "name", "no run nothing"),
    ({"family": "gpt", "data": "shakespeare", "resume": "yes"}, 400, "resume", "boolean"),
    ({"family": "gpt"}, 400, "data", "data is required"),
    ({"family": "gpt", "data": "shakespeare", "name": "taken"}, 409, "name", "already exists"),
    ({"family": "gpt", "data": "shakespeare", "name": "outside"}, 400, "name", "inside the runs folder"),
])
def test_bad_requests_are_refused_in_the_error_shape(tmp_path, body, status, param, says):
    manager, client = make(tmp_path, start=False)
    (tmp_path / "runs" / "taken").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs" / "outside").symlink_to(tmp_path / "elsewhere")
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert says in error["message"], error
    assert client.get("/v1/jobs").json()["data"] == []  # nothing was queued


def test_unknown_jobs_are_404_and_a_full_queue_is_429(tmp_path):
    manager, client = make(tmp_path, start=False, queue=1)
    for method, url in (("GET", "/v1/jobs/job-0123456789abcdef"), ("DELETE", "/v1/jobs/job-0123456789abcdef"),
                        ("GET", "/v1/jobs/job-0123456789abcdef/events"), ("GET", "/v1/jobs/..%2f..%2fetc")):
        r = client.request(method, url)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", (url, r.text)
    r = client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    first = post(client, family="gpt", data="shakespeare", name="one")
    post(client, 409, family="gpt", data="shakespeare", name="one", resume=False)  # queued on that run already
    r = client.post("/v1/jobs", json={"family": "gpt", "data": "shakespeare", "name": "two"})
    assert r.status_code == 429 and r.headers["retry-after"] and r.json()["error"]["type"] == "rate_limit_error"
    assert [j["status"] for j in client.get("/v1/jobs").json()["data"]] == ["queued"]  # not started: no scheduler
    assert manager.cancel(first["id"])["status"] == "cancelled"
    assert manager.cancel(first["id"])["status"] == "cancelled"


FAKE_WORKER = """
import sys, time
from pathlib import Path
with open(Path(sys.argv[1]) / "starts", "a") as f:
    f.write(sys.argv[2] + "\\n")
time.sleep(0.6)
if sys.argv[3] == "bad":
    print("Traceback (most recent call last):\\n\\x1b[31mValueError: boom\\x1b[0m\\n", file=sys.stderr)
    sys.exit(3)
"""


def test_two_servers_share_max_jobs_and_never_start_a_job_twice(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setattr(JobManager, "_command", lambda self, row: [sys.executable, "-c", FAKE_WORKER, str(runs),
                                                                   row["id"], row["run"]])
    a, client = make(tmp_path, max_jobs=1)
    b, _ = make(tmp_path, max_jobs=1)
    try:
        ids = [post(client, family="gpt", data="shakespeare", name=name)["id"] for name in ("r1", "bad", "r3")]
        most = 0
        while not all(done(a.get(i)) for i in ids):
            most = max(most, sum(j["status"] == "running" for j in b.list()))
            time.sleep(0.05)
    finally:
        a.stop()
        b.stop()
    jobs = {j["run"]: j for j in a.list()}
    assert most == 1
    assert sorted((runs / "starts").read_text().split()) == sorted(ids)  # each started once, by one server
    assert jobs["r1"]["status"] == jobs["r3"]["status"] == "succeeded"
    assert jobs["bad"]["status"] == "failed" and jobs["bad"]["exit_code"] == 3 and jobs["bad"]["error"] == \
        "ValueError: boom"


def test_the_worker_command_holds_only_checked_names_and_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = JobManager(ServeConfig(runs=Path("runs")))  # relative, as `genlab serve` defaults to
    job = manager.submit({"family": "gpt", "data": "shakespeare", "name": "r", "config": "demo", "resume": False,
                          "set": ["train.max_steps=7", "train.seed=3"]})
    row = manager.store.one("SELECT * FROM jobs WHERE id = ?", job["id"])
    cmd = manager._command(row)
    assert cmd[:6] == [sys.executable, "-m", "genlab.cli", "train", "gpt", "--data"] and cmd[6] == "shakespeare"
    assert cmd[cmd.index("--out") + 1] == str(tmp_path.resolve() / "runs" / "r")
    assert cmd[cmd.index("--config") + 1] == str(shipped_configs()["demo"]) and Path(cmd[cmd.index("--config") + 1]
                                                                                     ).is_absolute()
    assert cmd.count("--set") == 2 and "--resume" not in cmd and job["max_steps"] == 7
    assert not (tmp_path / "runs" / "r").exists()  # nothing is made before the worker starts
