"""Splunk SOAR's own client (soarsdk) against wasp's /rest: it logs in, posts an action
run, waits for it, and pages through a filtered list of action runs. Prints one JSON
object: what it read, or the refusal it got.

Environment: WASP_URL (the server, no path); SOAR_TOKEN (a token, `ph-auth-token`), or
SOAR_USER and SOAR_PASSWORD (the password a token) with SOAR_LOGIN `basic` (basic auth on
every request, as seed 001's URLs carry it) or `password` (soarsdk's own login: basic
auth once, then the web session's cookies); SOAR_PAGE_SIZE (records a page, default 1).
"""

import json
import os
import sys
import time

import requests
from soarsdk.client import PhantomClient
from soarsdk.exceptions import AuthenticationError


class Client(PhantomClient):
    """soarsdk's own bug: `connect()` sets its session to what `token_authenticate` and
    `password_authenticate` return, which is None (soarsdk/client.py), so its first
    request fails with AttributeError. Return the session each set up."""

    def token_authenticate(self, token):
        super().token_authenticate(token)
        return self.session

    def password_authenticate(self, username, password):
        super().password_authenticate(username, password)
        return self.session


def client() -> PhantomClient:
    url = os.environ["WASP_URL"] + "/"
    if os.environ.get("SOAR_LOGIN") == "password":
        return Client(url, username=os.environ["SOAR_USER"], password=os.environ["SOAR_PASSWORD"], verify=False)
    if os.environ.get("SOAR_USER"):
        # Basic auth on every request, as seed 001's https://user:password@host/rest/...
        # does.
        session = requests.Session()
        session.auth = (os.environ["SOAR_USER"], os.environ["SOAR_PASSWORD"])
        return PhantomClient(url, session=session, verify=False)
    # The keyword is splunkToken (soarsdk's README says token=).
    return Client(url, splunkToken=os.environ["SOAR_TOKEN"], verify=False)


def main():
    try:
        c = client()
    except AuthenticationError as refused:
        response = requests.get(
            os.environ["WASP_URL"] + "/rest/version",
            headers={"ph-auth-token": os.environ.get("SOAR_TOKEN", "")},
            timeout=10,
        )
        print(json.dumps({"refused": str(refused), "status": response.status_code, "body": response.json()}))
        return
    posted = c._handle_request(
        method="POST",
        url="action_run",
        json={
            "action": "extract",
            "container_id": 1,
            "name": "soarsdk",
            "targets": [
                {
                    "app_id": "ioc-extract",
                    "parameters": [{"text": "a 1.2.3.4"}, {"text": "b evil.example"}],
                }
            ],
        },
    )
    run = posted["action_run_id"]
    for _ in range(500):
        status = c._handle_request(method="GET", url=f"action_run/{run}")["status"]
        if status not in ("pending", "running"):
            break
        time.sleep(0.02)
    pages, ids, page = [], [], 0
    while True:
        body = c._handle_request(
            method="GET",
            url="action_run",
            params={
                "_filter_status": "success",
                "page": page,
                "page_size": int(os.environ.get("SOAR_PAGE_SIZE", "1")),
                "sort": "id",
                "order": "desc",
            },
        )
        pages.append(body["num_pages"])
        ids += [record["id"] for record in body["data"]]
        page += 1
        if page >= body["num_pages"]:
            break
    app_runs = c.get_app_runs({"_filter_action_run": run})
    print(
        json.dumps(
            {
                "posted": run,
                "status": status,
                "ids": ids,
                "pages": pages,
                "app_runs": [r["id"] for r in app_runs],
                "cookies": sorted(c.session.cookies.keys()),
            }
        )
    )


if __name__ == "__main__":
    main()
