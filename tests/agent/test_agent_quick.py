from tests.agent.helpers import spec, ticker_package, wait_until, workload_processes


def test_smoke(agent, artifacts):
    d1 = artifacts.add(ticker_package("01"))
    r = agent.client.put("/workloads", json={"workloads": [spec("monitoring-01", d1, "01")]})
    assert r.status_code == 200, r.text
    wait_until(lambda: agent.status("monitoring-01")["state"] == "running", what="running")
    print(agent.client.get("/workloads").json())
    assert len(workload_processes(agent.workdir, "monitoring-01")) == 1
