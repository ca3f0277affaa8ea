"""ThreatConnect's own client (tcex) against wasp's /api/v3: it authenticates, builds a
TQL filter with its builder, counts, and pages through `next` links. Prints one JSON
object: what it read, or the refusal it got.

Environment: WASP_URL (the server, no path); TC_TOKEN (token auth), or TC_ACCESS_ID and
TC_SECRET_KEY (HMAC auth); TC_PAGE_SIZE (records a page, default 2); TC_MODE `list`
(default) or `raw` (one GET, its status and body).
"""

import json
import os
import sys

from tcex.api.tc.v3.object_collection_abc import ObjectCollectionABC
from tcex.api.tc.v3.tql.tql_operator import TqlOperator
from tcex.api.tc.v3.tql.tql_type import TqlType
from tcex.input.field_type.sensitive import Sensitive
from tcex.requests_tc import TcSession
from tcex.requests_tc.auth.tc_auth import TcAuth


class PlainHttpSession(TcSession):
    """tcex's own bug: `TcSession.url()` treats only URLs starting with `https` as
    absolute (tcex/requests_tc/tc_session.py), so over plain http a `next` link is
    glued to the base URL. Behind TLS this is not needed."""

    def url(self, url: str) -> str:
        if url.startswith(("http://", "https://")):
            return url
        return f"{self.base_url}{url}"


class Execution(dict):
    def __init__(self, session=None, **record):
        super().__init__(record)


class Executions(ObjectCollectionABC):
    """A tcex collection of playbook executions (tcex has no class for them)."""

    def __init__(self, session, params=None):
        super().__init__(session, params=params)
        self.type_ = "executions"

    @property
    def _api_endpoint(self) -> str:
        return "/v3/playbook/executions"

    def __iter__(self):
        return self.iterate(base_class=Execution)


def session() -> TcSession:
    if os.environ.get("TC_ACCESS_ID"):
        auth = TcAuth(
            tc_api_access_id=os.environ["TC_ACCESS_ID"],
            tc_api_secret_key=Sensitive(os.environ["TC_SECRET_KEY"]),
        )
    else:
        auth = TcAuth(tc_token=Sensitive(os.environ["TC_TOKEN"]))
    return PlainHttpSession(auth=auth, base_url=os.environ["WASP_URL"] + "/api", verify=False)


def main():
    s = session()
    if os.environ.get("TC_MODE") == "raw":
        response = s.get("/v3/playbook/executions", params={"resultLimit": 1})
        print(json.dumps({"status": response.status_code, "body": response.json()}))
        return
    requests = []
    send = s.request

    def counted(method, url, **kwargs):
        response = send(method, url, **kwargs)
        requests.append(response.status_code)
        return response

    s.request = counted
    executions = Executions(s, params={"result_limit": int(os.environ.get("TC_PAGE_SIZE", "2"))})
    executions.tql.add_filter("status", TqlOperator.EQ, "Completed", TqlType.STRING)
    executions.tql.add_filter("id", TqlOperator.GT, 0, TqlType.INTEGER)
    count = len(executions)
    ids = [execution["id"] for execution in executions]
    print(json.dumps({"count": count, "ids": ids, "requests": requests, "tql": executions.tql.as_str}))


if __name__ == "__main__":
    main()
