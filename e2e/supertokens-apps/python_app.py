"""A SuperTokens backend written as SuperTokens' documentation writes one, in Python (supertokens-python
0.31 with FastAPI): the same routes and the same five error handlers as node-app.mjs, each recording that it
ran (GET /handlers) and answering with its own tag. Its core is Portcullis: `connection_uri` is Portcullis's
/supertokens/appid-<organization id>. Prints its address as the first line of stdout.

Environment: CONNECTION_URI, API_KEY (required); WEBSITE_DOMAIN, COOKIE_DOMAIN, OLDER_COOKIE_DOMAIN.
"""

import os
import socket
import sys

# supertokens-python fetches the Public Suffix List from the internet unless told not to.
os.environ.setdefault("SUPERTOKENS_TLDEXTRACT_DISABLE_HTTP", "1")

import uvicorn  # noqa: E402
from fastapi import Depends, FastAPI, Request  # noqa: E402
from supertokens_python import InputAppInfo, SupertokensConfig, init  # noqa: E402
from supertokens_python.framework.fastapi import get_middleware  # noqa: E402
from supertokens_python.recipe import session, usermetadata, userroles  # noqa: E402
from supertokens_python.recipe.session import SessionContainer  # noqa: E402
from supertokens_python.recipe.session.asyncio import (  # noqa: E402
    create_new_session,
    get_all_session_handles_for_user,
    get_session_information,
    revoke_all_sessions_for_user,
    revoke_session,
)
from supertokens_python.recipe.session.framework.fastapi import verify_session  # noqa: E402
from supertokens_python.recipe.session.interfaces import ClaimValidationResult, SessionClaimValidator  # noqa: E402
from supertokens_python.recipe.usermetadata.asyncio import get_user_metadata, update_user_metadata  # noqa: E402
from supertokens_python.recipe.userroles import PermissionClaim, UserRoleClaim  # noqa: E402
from supertokens_python.recipe.userroles.asyncio import (  # noqa: E402
    add_role_to_user,
    create_new_role_or_add_permissions,
    get_roles_for_user,
)
from supertokens_python.types import RecipeUserId  # noqa: E402

handlers_run = []


def answer(res, status, content):
    res.set_status_code(status)
    res.set_json_content(content)
    return res


async def on_unauthorised(req, message, res):
    handlers_run.append({"handler": "onUnauthorised", "message": message})
    return answer(res, 401, {"message": "unauthorised", "handler": "onUnauthorised"})


async def on_invalid_claim(req, errors, res):
    errors = [{"id": e.id_, "reason": e.reason} for e in errors]
    handlers_run.append({"handler": "onInvalidClaim", "validatorErrors": errors})
    return answer(res, 403, {"message": "invalid claim", "claimValidationErrors": errors, "handler": "onInvalidClaim"})


async def on_token_theft_detected(req, session_handle, user_id, recipe_user_id, res):
    handlers_run.append({
        "handler": "onTokenTheftDetected",
        "sessionHandle": session_handle,
        "userId": user_id,
        "recipeUserId": recipe_user_id.get_as_string(),
    })
    await revoke_session(session_handle)
    return answer(res, 401, {"message": "token theft detected", "handler": "onTokenTheftDetected"})


async def on_try_refresh_token(req, message, res):
    handlers_run.append({"handler": "onTryRefreshToken", "message": message})
    return answer(res, 401, {"message": "try refresh token", "handler": "onTryRefreshToken"})


async def on_clear_duplicate_session_cookies(req, message, res):
    handlers_run.append({"handler": "onClearDuplicateSessionCookies", "message": message})
    return answer(res, 200, {"message": message, "handler": "onClearDuplicateSessionCookies"})


class IsAdmin(SessionClaimValidator):
    def __init__(self):
        super().__init__("is-admin")

    def should_refetch(self, payload, user_context):
        return False

    async def validate(self, payload, user_context):
        if payload.get("role") == "admin":
            return ClaimValidationResult(is_valid=True)
        return ClaimValidationResult(
            is_valid=False, reason={"message": "wrong role", "expected": "admin", "actual": payload.get("role")}
        )


listener = socket.socket()
listener.bind(("127.0.0.1", 0))
api_domain = f"http://127.0.0.1:{listener.getsockname()[1]}"

init(
    app_info=InputAppInfo(
        app_name="portcullis-core-e2e",
        api_domain=api_domain,
        website_domain=os.environ.get("WEBSITE_DOMAIN", "http://localhost:3000"),
        api_base_path="/auth",
    ),
    supertokens_config=SupertokensConfig(
        connection_uri=os.environ["CONNECTION_URI"], api_key=os.environ["API_KEY"]
    ),
    framework="fastapi",
    recipe_list=[
        session.init(
            cookie_domain=os.environ.get("COOKIE_DOMAIN") or None,
            older_cookie_domain=os.environ.get("OLDER_COOKIE_DOMAIN") or None,
            error_handlers=session.InputErrorHandlers(
                on_unauthorised=on_unauthorised,
                on_invalid_claim=on_invalid_claim,
                on_token_theft_detected=on_token_theft_detected,
                on_try_refresh_token=on_try_refresh_token,
                on_clear_duplicate_session_cookies=on_clear_duplicate_session_cookies,
            ),
        ),
        userroles.init(),
        usermetadata.init(),
    ],
)

app = FastAPI()
app.add_middleware(get_middleware())


def with_validators(*extra):
    return verify_session(override_global_claim_validators=lambda globals_, _s, _c: [*globals_, *extra])


@app.post("/login")
async def login(request: Request):
    body = await request.json()
    created = await create_new_session(
        request, "public", RecipeUserId(body["userId"]), {"role": body.get("role", "member")}, {"cart": 0}
    )
    return {"handle": created.get_handle(), "userId": created.get_user_id()}


@app.get("/me")
async def me(s: SessionContainer = Depends(verify_session())):
    return {"userId": s.get_user_id(), "handle": s.get_handle(), "payload": s.get_access_token_payload()}


@app.get("/me-db")
async def me_db(s: SessionContainer = Depends(verify_session(check_database=True))):
    return {"userId": s.get_user_id(), "handle": s.get_handle()}


@app.get("/admin")
async def admin(s: SessionContainer = Depends(with_validators(IsAdmin()))):
    return {"admin": s.get_user_id()}


@app.post("/roles/{user_id}")
async def roles(user_id: str, request: Request):
    for role, permissions in (await request.json()).items():
        await create_new_role_or_add_permissions(role, permissions)
        await add_role_to_user("public", user_id, role)
    return {"roles": (await get_roles_for_user("public", user_id)).roles}


@app.get("/role-admin")
async def role_admin(s: SessionContainer = Depends(with_validators(UserRoleClaim.validators.includes("admin")))):
    return {"roles": s.get_access_token_payload()["st-role"]["v"]}


@app.get("/perm-write")
async def perm_write(s: SessionContainer = Depends(with_validators(PermissionClaim.validators.includes("write")))):
    return {"permissions": s.get_access_token_payload()["st-perm"]["v"]}


@app.post("/metadata/{user_id}")
async def set_metadata(user_id: str, request: Request):
    result = await update_user_metadata(user_id, await request.json())
    return {"status": "OK", "metadata": result.metadata}


@app.get("/metadata/{user_id}")
async def metadata(user_id: str):
    return {"status": "OK", "metadata": (await get_user_metadata(user_id)).metadata}


@app.post("/claim")
async def claim(request: Request, s: SessionContainer = Depends(verify_session())):
    await s.merge_into_access_token_payload(await request.json())
    return {"payload": s.get_access_token_payload()}


@app.post("/data")
async def data(request: Request, s: SessionContainer = Depends(verify_session())):
    await s.update_session_data_in_database(await request.json())
    return {"data": await s.get_session_data_from_database()}


@app.get("/info/{handle}")
async def info(handle: str):
    found = await get_session_information(handle)
    if found is None:
        return {"missing": True}
    return {
        "userId": found.user_id,
        "recipeUserId": found.recipe_user_id.get_as_string(),
        "tenantId": found.tenant_id,
        "sessionDataInDatabase": found.session_data_in_database,
        "customClaimsInAccessTokenPayload": found.custom_claims_in_access_token_payload,
    }


@app.post("/revoke/{user_id}")
async def revoke(user_id: str):
    return {"revoked": await revoke_all_sessions_for_user(user_id)}


@app.get("/handles/{user_id}")
async def handles(user_id: str):
    return {"handles": await get_all_session_handles_for_user(user_id)}


@app.get("/handlers")
async def handlers():
    return handlers_run


@app.get("/")
async def root():
    return "ok"


print(api_domain, flush=True)
sys.stdout.flush()
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
