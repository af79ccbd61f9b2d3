"""Row locks on a tenant never deadlock with its tasks' writes: a planner deciding
``max_running`` holds the tenant's row while it moves a task, and a DELETE of that task writes
the task's row twice (cancelled, then marked deleted), which makes PostgreSQL check the
tenant key again. Seen in CI under load: "deadlock detected", and the DELETE answered 503."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from sqlalchemy import create_engine, update

from facefleet.records.db import Task, Tenant
from facefleet.records.engine import make_sessionmaker
from facefleet.task.jobs import delete_task
from facefleet.tenants.max_running import admitted
from tests.harness.services import postgres_database
from tests.harness.skips import required


def test_a_delete_beside_a_planner_of_the_same_tenant_does_not_deadlock():
    with required(), postgres_database() as url:
        engine = create_engine(url, pool_size=4)
        sessions = make_sessionmaker(engine)
        try:
            with sessions.begin() as session:
                session.add(Tenant(name="locks", webhook_secret="x", max_running=4))
                session.flush()
                task = Task(tenant="locks", state="queued", target_key="t")
                session.add(task)
                session.flush()
                task_id = task.id
            failures: list[BaseException] = []

            def delete() -> None:
                try:
                    delete_task(SimpleNamespace(sessions=sessions), task_id)  # type: ignore[arg-type]
                except BaseException as exc:
                    failures.append(exc)

            with sessions.begin() as planner:
                assert admitted(planner, planner.get(Task, task_id))  # the tenant's row, held
                deleting = threading.Thread(target=delete)
                deleting.start()
                time.sleep(1.0)  # the DELETE has written the task's row (and, before, then waited)
                try:
                    planner.execute(update(Task).where(Task.id == task_id).values(priority=6))
                except BaseException as exc:
                    failures.append(exc)
                    raise
                finally:
                    deleting.join(30)
            assert not deleting.is_alive() and not failures, failures
            with sessions() as session:
                assert session.get(Task, task_id).deleted_at is not None
        finally:
            engine.dispose()
