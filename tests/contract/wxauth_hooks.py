"""schemathesis hooks for scripts/contract: the login routes need what only WeChat gives (a
fresh wx.login() code, a login session, data encrypted under the user's session_key) or a
refresh token not yet used. A schema-valid (positive) case of those routes gets them, minted
from the simulator, so the contract check reaches their success paths; negative cases are
left as generated, to be refused.

Loaded through SCHEMATHESIS_HOOKS; WXAUTH_CONTRACT_SIM, WXAUTH_CONTRACT_GATEWAY and
WXAUTH_CONTRACT_APPID name the stack.
"""

import itertools
import json
import os
import urllib.request

import schemathesis

SIM = os.environ["WXAUTH_CONTRACT_SIM"]
GATEWAY = os.environ["WXAUTH_CONTRACT_GATEWAY"]
APPID = os.environ["WXAUTH_CONTRACT_APPID"]
# A user per case, so a refresh of one never spends another's token.
USERS = itertools.count()


def _call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _code(openid):
    return _call("POST", f"{SIM}/sim/login", {"appid": APPID, "openid": openid})["code"]


def _session(openid):
    answer = _call("GET", f"{GATEWAY}/wxauth/getsessionkey?appid={APPID}&code={_code(openid)}")
    return answer["data"]


def _positive(case):
    meta = getattr(case, "meta", None)
    return meta is not None and str(meta.generation.mode) == "positive"


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    openid = f"o-contract-{next(USERS)}"
    route = (str(case.method).upper(), case.path)
    if route == ("GET", "/wxauth/getsessionkey"):
        case.query = {"appid": APPID, "code": _code(openid)}
    elif route == ("POST", "/v1/login"):
        case.body = {"appid": APPID, "code": _code(openid)}
    elif route == ("POST", "/v1/token/refresh"):
        login = _call("POST", f"{GATEWAY}/v1/login", {"appid": APPID, "code": _code(openid)})
        case.body = {"refresh_token": login["data"]["refresh_token"]}
    elif route == ("POST", "/oauth/token"):
        case.body = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": _code(openid),
            "subject_token_type": "urn:wxauth:params:oauth:token-type:wx-login-code",
            "client_id": APPID,
        }
    elif route == ("POST", "/v1/me/phone"):
        # The bearer the run presents is o-contract's: a code for that user's number.
        minted = _call(
            "POST",
            f"{SIM}/sim/phone_code",
            {
                "appid": APPID,
                "openid": "o-contract",
                "phone_number": "13800138000",
                "pure_phone_number": "13800138000",
                "country_code": "86",
            },
        )
        case.body = {"code": minted["code"]}
    elif route == ("POST", "/wxauth/wxsmallusersave"):
        uuid = _session(openid)
        encrypted = _call(
            "POST",
            f"{SIM}/sim/userinfo",
            {"appid": APPID, "openid": openid, "profile": {"nickName": "Contract", "gender": 1}},
        )
        body = {"appid": APPID, "uuid": uuid, "type": "userinfo"}
        body.update(encrypted)
        case.body = body
        # The route also takes a form body; the JSON one is what the stack minted for.
        case.media_type = "application/json"
