from tests.api.helpers import batch_body


def test_create_and_read(client, tenant):
    created = client.post("/v1/batch-calls", json=batch_body(tenant), headers=tenant.headers)
    assert created.status_code == 202, created.text
    batch = created.json()
    detail = client.get(f"/v1/batch-calls/{batch['id']}", headers=tenant.headers).json()
    assert [r["phone"] for r in detail["recipients"]] == ["+14155552671", "+14155552672"]
