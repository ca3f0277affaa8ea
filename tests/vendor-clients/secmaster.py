"""Huawei Cloud's own SecMaster client (huaweicloudsdksecmaster) against wasp's
/v1/{project_id}/workspaces/{workspace_id}/soc/...: it signs each request with an AK/SK
pair (or sends an IAM token as `X-Auth-Token`), filters the playbook audit logs and pages
through them. Prints one JSON object: what it read, or the refusal it got.

Environment: WASP_URL (the server, no path); SM_AK and SM_SK (the key's id and signing
secret), SM_TOKEN (a token, sent as `X-Auth-Token`; the SDK still signs, with a
placeholder pair); SM_WORKSPACE (the workspace, wasp's tenant); SM_PAGE_SIZE (default 2).
"""

import json
import os

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdksecmaster.v1 import AuditLogInfo, ListPlaybookAuditLogsRequest, SecMasterClient


def client() -> SecMasterClient:
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    # Some pair is needed either way: without one the SDK asks a cloud server's metadata
    # service for it. The project id keeps it from asking IAM for one.
    credentials = BasicCredentials(
        ak=os.environ.get("SM_AK", "placeholder-ak"),
        sk=os.environ.get("SM_SK", "placeholder-sk"),
        project_id="0123456789abcdef0123456789abcdef",
    )
    return (
        SecMasterClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoint(os.environ["WASP_URL"])
        .build()
    )


def main():
    c = client()
    size = int(os.environ.get("SM_PAGE_SIZE", "2"))
    pages, ids, offset, count = [], [], 0, None
    try:
        while count is None or offset < count:
            request = ListPlaybookAuditLogsRequest(
                workspace_id=os.environ["SM_WORKSPACE"],
                offset=offset,
                limit=size,
                sort_key="start_time",
                sort_dir="desc",
                body=AuditLogInfo(instance_type="PLAYBOOK", status="FINISHED"),
            )
            invoker = c.list_playbook_audit_logs_invoker(request)
            if os.environ.get("SM_TOKEN"):
                invoker.add_header("X-Auth-Token", os.environ["SM_TOKEN"])
            response = invoker.invoke()
            count = response.count
            rows = response.audit_logs or []
            pages.append(len(rows))
            ids += [row.instance_id for row in rows]
            offset += size
            if not rows:
                break
    except ClientRequestException as refused:
        print(
            json.dumps(
                {
                    "status": refused.status_code,
                    "code": refused.error_code,
                    "message": refused.error_msg,
                    "request_id": refused.request_id,
                }
            )
        )
        return
    print(json.dumps({"count": count, "pages": pages, "ids": ids}))


if __name__ == "__main__":
    main()
