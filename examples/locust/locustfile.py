"""Load for lb-daemon from many machines with Locust (https://locust.io).

    pip install locust
    locust -f examples/locust/locustfile.py --host http://127.0.0.1:5000
    # distributed: one master, N workers (Locust's own mode)
    locust -f examples/locust/locustfile.py --master --host http://LB:5000
    locust -f examples/locust/locustfile.py --worker --master-host MASTER

Each simulated user sends GET /home with a key in the x-lb-key header: 80 % of the
requests use one of KEYS keys picked with a Zipf-like skew (hot keys), 20 % carry no key
(the daemon then picks a random one). The replica that answered is read from the
X-LB-Replica header and reported as a separate request name, so Locust's statistics show
the share per replica.
"""

import random

from locust import HttpUser, between, task

KEYS = 10_000
# Zipf-like weights: key i is chosen with probability proportional to 1 / (i + 1).
_WEIGHTS = [1.0 / (i + 1) for i in range(KEYS)]


class LoadBalancerUser(HttpUser):
    wait_time = between(0.0, 0.01)

    @task(4)
    def keyed(self):
        key = random.choices(range(KEYS), weights=_WEIGHTS, k=1)[0]
        self._home({"x-lb-key": f"user-{key}"})

    @task(1)
    def keyless(self):
        self._home({})

    def _home(self, headers):
        with self.client.get("/home", headers=headers, name="/home", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            replica = response.headers.get("x-lb-replica", "none")
            response.request_meta["name"] = f"/home [{replica}]"
            response.success()
