"""The official Huawei SDK against the emulator: it parses every ModelArts answer we serve,
and its AK/SK requests (X-Project-Id signed) verify.

No official SDK has the v1 session calls, so this covers ModelArts (DESIGN.md, "Settled",
16). The SDK is synchronous (requests), so its calls run in a thread against the emulator
serving from its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from asyncdeleter.testing import Emulator

modelarts = pytest.importorskip("huaweicloudsdkmodelarts.v1")
credentials = pytest.importorskip("huaweicloudsdkcore.auth.credentials")
exceptions = pytest.importorskip("huaweicloudsdkcore.exceptions.exceptions")

AK, SK = "OFFICIALSDKAK00001", "OfficialSdkSecretKey0000000000000000001"
PROJECT = "proj-sdk"


def client_for(url: str) -> Any:
    return (
        modelarts.ModelArtsClient.new_builder()
        .with_credentials(credentials.BasicCredentials(AK, SK, PROJECT))
        .with_endpoints([url])
        .build()
    )


def test_the_official_sdk_reads_and_deletes_through_the_emulator() -> None:
    emu = Emulator(access_keys={AK: SK})
    emu.add_default_workspace(PROJECT)
    emu.add_workspaces(PROJECT, ["ws-a", "ws-b"], extra={"description": "from the SDK test"})
    with emu.running_in_thread():
        client = client_for(emu.url)
        listed = client.list_workspace(modelarts.ListWorkspaceRequest())
        shown = client.show_workspace(modelarts.ShowWorkspaceRequest(workspace_id="ws-a"))
        deleted = client.delete_workspace(modelarts.DeleteWorkspaceRequest(workspace_id="ws-b"))
        with pytest.raises(exceptions.ClientRequestException) as info:
            client.show_workspace(modelarts.ShowWorkspaceRequest(workspace_id="ws-gone"))
    assert listed.total_count == 3
    assert sorted(w.id for w in listed.workspaces) == ["0", "ws-a", "ws-b"]
    assert {w.enterprise_project_name for w in listed.workspaces} == {"default"}
    assert (shown.id, shown.status, shown.description) == ("ws-a", "NORMAL", "from the SDK test")
    assert [(g.user_name, g.user_type) for g in shown.grants] == [("emulator-user", "IAM")]
    assert deleted.workspace_id == "ws-b"
    assert (info.value.status_code, info.value.error_code) == (404, "ModelArts.0104")
    assert emu.workspaces(PROJECT) == {"0", "ws-a"}
    # Every request was signed by the SDK, X-Project-Id among the signed headers, and the
    # emulator's own verifier accepted it.
    assert [r.status for r in emu.requests] == [200, 200, 200, 404]
    for request in emu.requests:
        assert request.headers["X-Project-Id"] == PROJECT
        assert "x-project-id" in request.headers["Authorization"]


def test_a_bad_signature_is_the_gateway_s_401_to_the_sdk_too() -> None:
    emu = Emulator(access_keys={AK: "another-secret-key-000000000000000"})
    with emu.running_in_thread():
        client = client_for(emu.url)
        with pytest.raises(exceptions.ClientRequestException) as info:
            client.list_workspace(modelarts.ListWorkspaceRequest())
    assert (info.value.status_code, info.value.error_code) == (401, "APIG.0301")
