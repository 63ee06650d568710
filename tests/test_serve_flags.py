"""Server flags a user relies on: --auth protects the UI; a public bind needs --api-auth."""
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

from tests.conftest import AUTH_PASSWORD, AUTH_USER


def status(url, data=None):
    try:
        with urllib.request.urlopen(url, data=data, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_auth_flag_requires_login_for_the_ui(auth_server):
    assert status(auth_server.url + "config") == 401
    wrong = urllib.parse.urlencode({"username": AUTH_USER, "password": "nope"}).encode()
    assert status(auth_server.url + "login", wrong) == 400
    right = urllib.parse.urlencode({"username": AUTH_USER, "password": AUTH_PASSWORD}).encode()
    assert status(auth_server.url + "login", right) == 200


def test_listening_publicly_without_api_auth_refuses_to_start(tmp_path):
    done = subprocess.run([sys.executable, "-m", "studio", "serve", "--listen", "--no-browser", "--port", "7999",
                           "--outputs-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--api-auth" in done.stderr + done.stdout
