"""The in-process executor: isolation, reload, nesting and misbehaving handlers, run for real."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from plldb import naming, protocol
from plldb.layer import polling
from plldb.local.executor import (
    BUSY_ERROR,
    CLOSED_ERROR,
    CREDENTIALS_FUNCTION,
    CREDENTIALS_LOCAL,
    EXIT_ERROR,
    TIMEOUT_ERROR,
    UNKNOWN_FUNCTION_ERROR,
    Executor,
    function_environment,
)
from plldb.local.lambda_logging import InvocationOutput
from plldb.project.model import LocalFunction
from plldb.runner import Outcome

pytestmark = pytest.mark.timeout(60)
FIXTURES = Path(__file__).parent / "fixtures" / "executor"
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
REGION = "eu-west-1"


def local_function(name: str, handler: str, code_dir: Path, package_dirs: tuple[Path, ...] = ()) -> LocalFunction:
    return LocalFunction(
        logical_id=name,
        handler=handler,
        runtime=RUNTIME,
        code_dir=code_dir,
        import_path=(code_dir, *package_dirs),
        package_dirs=package_dirs,
        physical_name=f"stack-{name}",
    )


def invocation(function: str, event: object = None, seconds: float = 30, env: dict | None = None, **extra) -> dict:
    """A protocol-valid invocation message, as the WebSocket loop would hand it over."""
    message = {
        "type": protocol.TYPE_INVOCATION,
        "request_id": str(uuid.uuid4()),
        "session_id": str(uuid.uuid4()),
        "function_name": function,
        "invoked_function_arn": f"arn:aws:lambda:{REGION}:123456789012:function:{function}",
        "deadline_ms": int((time.time() + seconds) * 1000),
        "event": json.dumps(event if event is not None else {}),
        "environment": {
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abc",
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "ASIAFUNCTION",
            "AWS_SECRET_ACCESS_KEY": "function-secret",
            "AWS_SESSION_TOKEN": "function-token",
            "PATH": "/var/lang/bin:/usr/bin",
            "AWS_LAMBDA_EXEC_WRAPPER": naming.WRAPPER_PATH,
            naming.ENV_SESSION_ID: "s",
            **(env or {}),
        },
        "trace_id": "Root=1-abc",
        **extra,
    }
    return protocol.parse_server_message(protocol.encode(message))


class Answers:
    """Collects done() callbacks; wait() bounds every test."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.threads: dict[str, str] = {}
        self.condition = threading.Condition()

    def __call__(self, request_id: str, outcome: Outcome) -> None:
        with self.condition:
            assert request_id not in self.outcomes, "done called twice"
            self.outcomes[request_id] = outcome
            self.threads[request_id] = threading.current_thread().name
            self.condition.notify_all()

    def wait(self, request_id: str, timeout: float = 10) -> Outcome:
        with self.condition:
            assert self.condition.wait_for(lambda: request_id in self.outcomes, timeout), f"no answer for {request_id}"
            return self.outcomes[request_id]

    def result(self, request_id: str, timeout: float = 10) -> object:
        outcome = self.wait(request_id, timeout)
        assert outcome.ok, outcome.error
        return json.loads(outcome.body)


def run(executor: Executor, answers: Answers, message: dict, timeout: float = 10) -> Outcome:
    executor.submit(message, answers)
    return answers.wait(message["request_id"], timeout)


@pytest.fixture
def answers() -> Answers:
    return Answers()


@contextmanager
def make_executor(functions: dict[str, LocalFunction], **options) -> Iterator[Executor]:
    executor = Executor({f.physical_name: f for f in functions.values()}, **options)
    try:
        yield executor
    finally:
        executor.shutdown(timeout=5)


@pytest.fixture
def two(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """alpha and beta: both have app.py, utils.py and pkg/helper.py."""
    handler = getattr(request, "param", "whoami")
    with make_executor({
        "alpha": local_function("Alpha", f"app.{handler}", FIXTURES / "alpha"),
        "beta": local_function("Beta", f"app.{handler}", FIXTURES / "beta"),
    }) as executor:
        yield executor


def alpha(handler: str, **options) -> AbstractContextManager[Executor]:
    return make_executor({"alpha": local_function("Alpha", f"app.{handler}", FIXTURES / "alpha")}, **options)


def test_colliding_module_names_stay_separate(two: Executor, answers: Answers) -> None:
    a, b = invocation("stack-Alpha"), invocation("stack-Beta", {"n": 1})
    two.submit(a, answers)
    two.submit(b, answers)
    ra, rb = answers.result(a["request_id"]), answers.result(b["request_id"])
    assert (ra["utils"], ra["helper"], ra["dynamic"]) == ("alpha", "alpha-helper(alpha)", "alpha")
    assert (rb["utils"], rb["helper"], rb["dynamic"]) == ("beta", "beta-helper(beta-sibling)", "beta")
    assert rb["event"] == {"n": 1}
    assert ra["module"] == rb["module"] == "app", "__name__ is Lambda's"
    module = sys.modules[two.runtimes["stack-Alpha"].namespace.module_name("app")]
    other = sys.modules[two.runtimes["stack-Beta"].namespace.module_name("app")]
    assert module is not other
    assert getattr(sys.modules["app"], "whoami", None) is None, "two functions' app: none for other threads"
    assert module.whoami.__code__.co_filename == str(FIXTURES / "alpha" / "app.py"), "breakpoints match the source file"


def test_answers_come_from_worker_threads(two: Executor, answers: Answers) -> None:
    message = invocation("stack-Alpha")
    run(two, answers, message)
    assert answers.threads[message["request_id"]].startswith("plldb Alpha ")


@pytest.mark.parametrize("two", ["read_env"], indirect=True)
def test_environment_is_per_function_under_concurrency(two: Executor, answers: Answers) -> None:
    a = invocation("stack-Alpha", {"pause": 0.4}, env={"WHO": "alpha"})
    b = invocation("stack-Beta", {"pause": 0.4}, env={"WHO": "beta"})
    started = time.monotonic()
    two.submit(a, answers)
    two.submit(b, answers)
    ra, rb = answers.result(a["request_id"]), answers.result(b["request_id"])
    assert time.monotonic() - started < 0.75, "the two handlers did not overlap"
    assert ra["first"] == ra["second"] == ["alpha", "alpha"]
    assert ra["child"] == ["alpha"], "a thread started by the handler inherits its environment"
    assert ra["wrote"] == "alpha"
    assert rb["first"] == rb["second"] == ["beta", "beta"]
    assert "WHO" not in os.environ and os.getenv("WROTE_BY") is None, "nothing leaks to plldb's environment"


@pytest.fixture
def read_env() -> Iterator[Executor]:
    with alpha("read_env") as executor:
        yield executor


def test_function_credentials_by_default(read_env: Executor, answers: Answers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "developer")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADEVELOPER")
    body = json.loads(run(read_env, answers, invocation("stack-Alpha", env={"WHO": "x"})).body)
    assert (body["secret"], body["profile"]) == ("ASIAFUNCTION", None)
    assert body["task_root"] == str(FIXTURES / "alpha")
    assert body["trace"] == "Root=1-abc"
    assert "AWS_LAMBDA_EXEC_WRAPPER" not in body["keys"]
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIADEVELOPER"


def test_local_credentials_keep_the_developers(answers: Answers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "developer")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADEVELOPER")
    with alpha("read_env", credentials=CREDENTIALS_LOCAL) as executor:
        body = json.loads(run(executor, answers, invocation("stack-Alpha", env={"WHO": "x"})).body)
        assert (body["secret"], body["profile"]) == ("AKIADEVELOPER", "developer")


def test_function_environment_rules() -> None:
    local = {"HOME": "/home/dev", "PATH": "/usr/bin", "AWS_PROFILE": "dev", "AWS_ACCESS_KEY_ID": "LOCAL", "AWS_REGION": "us-east-1"}
    remote = {"PATH": "/var/lang/bin", "AWS_ACCESS_KEY_ID": "FN", "AWS_REGION": "eu-west-1", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
              naming.ENV_CONNECTION_ID: "c", "TABLE": "t"}
    env = function_environment(local, remote, CREDENTIALS_FUNCTION, "/code")
    assert env == {"HOME": "/home/dev", "PATH": "/usr/bin", "AWS_ACCESS_KEY_ID": "FN", "AWS_REGION": "eu-west-1", "TABLE": "t", "LAMBDA_TASK_ROOT": "/code"}
    env = function_environment(local, remote, CREDENTIALS_LOCAL, "/code")
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_PROFILE"], env["AWS_REGION"]) == ("LOCAL", "dev", "eu-west-1")


def test_unknown_credentials_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="credentials must be one of function, local, not 'mine'"):
        Executor({}, credentials="mine")


def write_function(root: Path, app: str, utils: str = "VALUE = 1\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(app)
    (root / "utils.py").write_text(utils)
    return root


COUNTING_APP = """
import os
import utils
COLD = os.urandom(8).hex()

def handler(event, context):
    return {"cold": COLD, "value": utils.VALUE}
"""


def test_cold_start_once_then_reload_after_a_change(tmp_path: Path, answers: Answers) -> None:
    code = write_function(tmp_path / "fn", COUNTING_APP)
    with make_executor({"f": local_function("Counting", "app.handler", code)}) as executor:
        first = json.loads(run(executor, answers, invocation("stack-Counting")).body)
        second = json.loads(run(executor, answers, invocation("stack-Counting")).body)
        assert first == second and first["value"] == 1
        (code / "utils.py").write_text("VALUE = 2\n")  # same second, same size: no stale bytecode
        third = json.loads(run(executor, answers, invocation("stack-Counting")).body)
        assert third["value"] == 2 and third["cold"] != first["cold"]
        assert executor.runtimes["stack-Counting"].cold_starts == 2
        assert not list(code.rglob("__pycache__")), "no bytecode written into the user's folders"


def test_broken_code_is_reported_then_fixed_without_restart(tmp_path: Path, answers: Answers) -> None:
    code = write_function(tmp_path / "fn", "import utils\ndef handler(e, c):\n    return utils.VALUE\n", "VALUE = (\n")
    with make_executor({"f": local_function("Broken", "app.handler", code)}) as executor:
        outcome = run(executor, answers, invocation("stack-Broken"))
        assert outcome.error["errorType"] == "Runtime.UserCodeSyntaxError"
        assert outcome.init_error
        (code / "utils.py").write_text("VALUE = 7\n")
        assert json.loads(run(executor, answers, invocation("stack-Broken")).body) == 7


@pytest.mark.parametrize("handler, error_type, message", [
    ("missing.handler", "Runtime.ImportModuleError", "Unable to import module 'missing': No module named 'missing'"),
    ("app.nothing", "Runtime.HandlerNotFound", "Handler 'nothing' missing on module 'app'"),
    ("app", "Runtime.MalformedHandlerName", "Bad handler 'app'"),
])
def test_handler_load_errors_use_the_runtime_format(handler: str, error_type: str, message: str, answers: Answers) -> None:
    with make_executor({"f": local_function("Alpha", handler, FIXTURES / "alpha")}) as executor:
        outcome = run(executor, answers, invocation("stack-Alpha"))
        assert (outcome.ok, outcome.error["errorType"]) == (False, error_type)
        assert outcome.error["errorMessage"].startswith(message)
        assert json.loads(outcome.body)["errorType"] == error_type


def test_module_level_import_of_a_missing_library_names_it(tmp_path: Path, answers: Answers) -> None:
    code = write_function(tmp_path / "fn", "import not_installed_anywhere_xyz\n")
    with make_executor({"f": local_function("F", "app.handler", code)}) as executor:
        outcome = run(executor, answers, invocation("stack-F"))
        assert outcome.error["errorMessage"] == "Unable to import module 'app': No module named 'not_installed_anywhere_xyz'"


def test_build_folder_packages_are_found_behind_the_source(tmp_path: Path, answers: Answers) -> None:
    code = write_function(tmp_path / "src", "import vendored_pkg_4711\ndef handler(e, c):\n    return [vendored_pkg_4711.WHERE, vendored_pkg_4711.__name__]\n")
    build = tmp_path / "build"
    (build / "vendored_pkg_4711").mkdir(parents=True)
    (build / "vendored_pkg_4711" / "__init__.py").write_text("WHERE = 'build'\n")
    (build / "app.py").write_text("raise RuntimeError('the build copy must not be used')\n")
    with make_executor({"f": local_function("V", "app.handler", code, (build,))}) as executor:
        assert json.loads(run(executor, answers, invocation("stack-V")).body) == ["build", "vendored_pkg_4711"]
    assert "vendored_pkg_4711" in sys.modules, "third-party packages keep their real name"


def test_handler_error_is_reported(answers: Answers) -> None:
    with alpha("fail") as executor:
        outcome = run(executor, answers, invocation("stack-Alpha", {"x": 1}))
        assert outcome.error["errorType"] == "ValueError"
        assert outcome.error["errorMessage"] == "bad input {'x': 1}"
        assert any("app.py" in line for line in outcome.error["stackTrace"])


@pytest.mark.parametrize("handler, event, expected", [
    ("exit_now", {"code": 3}, "Runtime exited with error: exit status 3 (the handler called sys.exit(3); plldb keeps running)"),
    ("exit_now", {"code": None}, "exit status 0"),
    ("interrupt", {}, "Runtime exited with error: KeyboardInterrupt raised by the handler (plldb keeps running)"),
])
def test_exits_and_interrupts_become_errors(handler: str, event: dict, expected: str, answers: Answers) -> None:
    with alpha(handler) as executor:
        message = invocation("stack-Alpha", event)
        outcome = run(executor, answers, message)
        assert outcome.error["errorType"] == EXIT_ERROR
        assert outcome.error["errorMessage"].startswith(f"RequestId: {message['request_id']} Error: ")
        assert expected in outcome.error["errorMessage"]
        assert run(executor, answers, invocation("stack-Alpha", event)).error["errorType"] == EXIT_ERROR, "still serving"


def test_non_serializable_result_is_a_marshal_error(answers: Answers) -> None:
    with alpha("unserializable") as executor:
        outcome = run(executor, answers, invocation("stack-Alpha"))
        assert outcome.error["errorType"] == "Runtime.MarshalError"
        assert "Object of type object is not JSON serializable" in outcome.error["errorMessage"]


@pytest.mark.parametrize("seconds", [0.6, 3.0])
def test_handler_past_its_deadline_gets_a_timeout_error(seconds: float, answers: Answers) -> None:
    with alpha("slow") as executor:
        message = invocation("stack-Alpha", {"seconds": seconds + 1}, seconds=seconds)
        shim_gives_up = message["deadline_ms"] / 1000 - polling.deadline_margin(seconds)
        outcome = run(executor, answers, message, timeout=seconds + 5)
        answered = time.time()
        assert answered < shim_gives_up, "answered before the shim stops waiting (one error, not two)"
        assert answered > shim_gives_up - 2 * polling.deadline_margin(seconds) - 0.5, "not answered early"
        assert outcome.error["errorType"] == TIMEOUT_ERROR
        assert outcome.error["errorMessage"] == (
            f"RequestId: {message['request_id']} Error: Task timed out: the handler of Alpha was still "
            "running in plldb when the function's time was up (it goes on in the background; its result "
            "will be discarded)"
        )
        assert executor.running() == [message["request_id"]], "the handler goes on in the background"
        assert executor.shutdown(timeout=5) == []
        assert answers.outcomes[message["request_id"]] is outcome, "the late result is discarded"


def test_context_fields_and_remaining_time(answers: Answers) -> None:
    with alpha("context_fields") as executor:
        message = invocation(
            "stack-Alpha", seconds=20,
            client_context=json.dumps({"custom": {"k": "v"}, "env": {}, "client": {}}),
            cognito_identity=json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"}),
            tenant_id="tenant-7",
        )
        body = json.loads(run(executor, answers, message).body)
        assert body.pop("remaining") in range(15_000, 20_001)
        assert body == {
            "aws_request_id": message["request_id"],
            "function_name": "stack-Alpha",
            "function_version": "$LATEST",
            "memory_limit_in_mb": "256",
            "invoked_function_arn": message["invoked_function_arn"],
            "log_group_name": "/aws/lambda/stack-Alpha",
            "log_stream_name": "2024/01/01/[$LATEST]abc",
            "identity": "id-1",
            "client": {"k": "v"},
            "tenant_id": "tenant-7",
        }


def test_a_paused_handler_does_not_stall_other_invocations(answers: Answers) -> None:
    functions = {
        "alpha": local_function("Alpha", "app.wait_for_gate", FIXTURES / "alpha"),
        "beta": local_function("Beta", "app.whoami", FIXTURES / "beta"),
    }
    with make_executor(functions) as executor:
        paused = invocation("stack-Alpha")
        started = time.monotonic()
        executor.submit(paused, answers)
        assert time.monotonic() - started < 0.5, "submit returns at once"
        others = [invocation("stack-Beta", {"i": i}) for i in range(3)]
        for message in others:
            executor.submit(message, answers)
        assert [answers.result(m["request_id"])["event"]["i"] for m in others] == [0, 1, 2]
        assert paused["request_id"] not in answers.outcomes
        gate_module = sys.modules[executor.runtimes["stack-Alpha"].namespace.module_name("app")]
        gate_module.GATE.set()
        assert answers.result(paused["request_id"]) is True


def test_nested_synchronous_invocation_does_not_deadlock(answers: Answers) -> None:
    functions = {
        "alpha": local_function("Alpha", "app.call_other", FIXTURES / "alpha"),
        "beta": local_function("Beta", "app.whoami", FIXTURES / "beta"),
    }
    with make_executor(functions, max_workers=2) as executor:
        def invoke(function: str, event: dict) -> object:  # what boto3 invoke + the shim amount to
            nested = Answers()
            message = invocation(function, event)
            executor.submit(message, nested)
            return nested.result(message["request_id"])

        cold_start = InvocationOutput("Alpha", "", None, lambda _function, _line: None)
        executor.runtimes["stack-Alpha"].handler({}, cold_start)  # so the test can wire INVOKE
        sys.modules[executor.runtimes["stack-Alpha"].namespace.module_name("app")].INVOKE = invoke
        message = invocation("stack-Alpha", {"target": "stack-Beta"})
        executor.submit(message, answers)
        result = answers.result(message["request_id"])
        assert result["alpha"] == "alpha"
        assert result["nested"]["utils"] == "beta" and result["nested"]["event"] == {"from": "alpha"}


def test_refusals_are_immediate_and_clear(answers: Answers) -> None:
    functions = {"alpha": local_function("Alpha", "app.wait_for_gate", FIXTURES / "alpha")}
    with make_executor(functions, max_workers=1) as executor:
        unknown = invocation("stack-Other")
        executor.submit(unknown, answers)
        assert answers.outcomes[unknown["request_id"]].error["errorType"] == UNKNOWN_FUNCTION_ERROR
        assert "function stack-Other is not mapped to local code" in answers.outcomes[unknown["request_id"]].error["errorMessage"]
        blocked = invocation("stack-Alpha", {"seconds": 0.5})
        executor.submit(blocked, answers)
        busy = invocation("stack-Alpha")
        executor.submit(busy, answers)
        assert answers.outcomes[busy["request_id"]].error["errorType"] == BUSY_ERROR
        assert answers.result(blocked["request_id"]) is False
        assert executor.shutdown(timeout=5) == []
        late = invocation("stack-Alpha")
        executor.submit(late, answers)
        assert answers.outcomes[late["request_id"]].error["errorType"] == CLOSED_ERROR


def test_the_test_stack_runs_isolated(answers: Answers) -> None:
    """The SAM test stack through discovery: same module names, a local layer, env from the cloud."""
    from plldb.project.discovery import discover
    from plldb.project.stack_mapping import map_stack_functions

    found = discover(Path(__file__).parent / "test_stack" / "template.yaml")
    resources = [
        {"LogicalResourceId": logical_id, "PhysicalResourceId": f"plldb-test-stack-{logical_id}-X1", "ResourceType": "AWS::Lambda::Function"}
        for logical_id in ("HelloFunction", "EchoFunction")
    ]
    mapping = map_stack_functions(found, resources)
    with make_executor(mapping.functions) as executor:
        hello = invocation("plldb-test-stack-HelloFunction-X1", {"name": "ada"}, env={"GREETING": "hi"})
        echo = invocation("plldb-test-stack-EchoFunction-X1", {"b": 1, "a": 2})
        executor.submit(hello, answers)
        executor.submit(echo, answers)
        assert answers.result(hello["request_id"]) == {
            "function": "hello", "module": "hello.app", "greeting": "hi, ada!",
            "utils": "hello-utils:ADA", "layer": "common-layer:hello",
        }
        assert answers.result(echo["request_id"])["utils"] == "echo-utils:a,b"


def test_dotted_imports_namespace_packages_and_path_handlers(tmp_path: Path, answers: Answers) -> None:
    code = tmp_path / "fn"
    (code / "handlers").mkdir(parents=True)  # no __init__.py: a namespace package
    (code / "lib" / "deep").mkdir(parents=True)
    (code / "lib" / "__init__.py").write_text("")
    (code / "lib" / "deep" / "__init__.py").write_text("from .leaf import VALUE\n")
    (code / "lib" / "deep" / "leaf.py").write_text("VALUE = 'leaf'\n")
    (code / "handlers" / "main.py").write_text(
        "import lib.deep\nimport lib.deep.leaf as leaf\n"
        "def handler(event, context):\n    return [lib.deep.VALUE, leaf.VALUE, __name__.rsplit('.', 2)[-2:]]\n"
    )
    with make_executor({"f": local_function("Dotted", "handlers/main.handler", code)}) as executor:
        outcome = run(executor, answers, invocation("stack-Dotted"))
        assert json.loads(outcome.body) == ["leaf", "leaf", ["handlers", "main"]]


def test_variables_that_redirect_the_sdk_are_never_taken_from_the_message() -> None:
    """A message's AWS_ENDPOINT_URL, profile, CA bundle or proxy would send the handler's
    calls (with the function's credentials) elsewhere: dropped; the developer's own stay."""
    local = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "HOME": "/home/dev"}
    remote = {"AWS_ENDPOINT_URL": "https://evil.example", "AWS_ENDPOINT_URL_S3": "https://evil.example",
              "AWS_CA_BUNDLE": "/tmp/evil.pem", "https_proxy": "http://evil.example:3128",
              "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://evil.example/creds", "AWS_PROFILE": "other",
              "AWS_SHARED_CREDENTIALS_FILE": "/tmp/evil", "AWS_ACCESS_KEY_ID": "FN", "TABLE": "t"}
    for mode in (CREDENTIALS_FUNCTION, CREDENTIALS_LOCAL):
        env = function_environment(local, remote, mode, "/code")
        assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
        assert not {"AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE", "https_proxy", "AWS_PROFILE",
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SHARED_CREDENTIALS_FILE"} & set(env)
        assert env["TABLE"] == "t"
