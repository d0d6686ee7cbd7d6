from __future__ import annotations

import dataclasses
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.errors import SpecError, SpecErrors
from reconciler.core.model import BuildSpec, CronSettings, HealthCheck, Resources
from reconciler.core.spec import (
    BIND_MOUNT,
    HOST_POWER,
    parse_app_spec,
    parse_duration,
    parse_memory,
)

FULL = dedent(
    """\
    name: shop
    services:
      web:
        image: busybox:1.36
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        env: {GREETING: hello, RATIO: 1.10, COUNT: 3, DEBUG: yes, EMPTY: ""}
        ports: [8080, "9090/tcp"]
        volumes: {data: /data}
        healthcheck: {http: /health, interval: 5s, timeout: 1s, start_period: 1m, retries: 5}
        resources: {memory: 256m, cpus: 0.5}
        user: "1000"
        working_dir: /app
      worker:
        build: {context: ./app/web/, dockerfile: docker/Dockerfile, args: {VERSION: 2}}
        entrypoint: run-worker --fast
        volumes: ["cache:/cache"]
        healthcheck: {command: [pgrep, worker]}
    cron: {service: worker, user: app, timezone: Europe/Paris, timeout: 300,
           concurrency: replace, retries: 2, jitter: 30s, pause_after_failures: 3,
           starting_deadline: 2m, history: 50}
    preview: {env: {GREETING: preview}}
    """
)


def web(*lines: str) -> str:
    """A one-service spec; the first extra line is line 4."""
    return "services:\n  web:\n    image: busybox\n" + "".join(f"    {line}\n" for line in lines)


def errors_of(text: str) -> list[SpecError]:
    with pytest.raises(SpecErrors) as caught:
        parse_app_spec(text)
    return caught.value.errors


def only_error(text: str) -> SpecError:
    errors = errors_of(text)
    assert len(errors) == 1, [e.render() for e in errors]
    return errors[0]


# --- valid specs -------------------------------------------------------------------------


def test_full_spec() -> None:
    app = parse_app_spec(FULL)
    assert app.name == "shop"
    assert list(app.services) == ["web", "worker"]
    web_, worker = app.services["web"], app.services["worker"]
    assert web_.image == "busybox:1.36" and web_.build is None
    assert web_.command == ("httpd", "-f", "-p", "8080", "-h", "/www")
    assert web_.env == {
        "GREETING": "hello",
        "RATIO": "1.10",
        "COUNT": "3",
        "DEBUG": "true",
        "EMPTY": "",
    }
    assert web_.ports == (8080, 9090)
    assert web_.volumes == {"data": "/data"}
    assert web_.healthcheck == HealthCheck(
        http="/health", port=8080, interval=5.0, timeout=1.0, retries=5, start_period=60.0
    )
    assert web_.resources == Resources(memory=256 * 1024**2, cpus=0.5)
    assert (web_.user, web_.working_dir) == ("1000", "/app")
    assert worker.image is None
    assert worker.build == BuildSpec("app/web", "docker/Dockerfile", {"VERSION": "2"})
    assert worker.entrypoint == ("/bin/sh", "-c", "run-worker --fast")
    assert worker.volumes == {"cache": "/cache"}
    assert worker.healthcheck == HealthCheck(command=("pgrep", "worker"))
    assert app.cron == CronSettings(
        service="worker",
        user="app",
        timezone="Europe/Paris",
        timeout=300.0,
        concurrency="replace",
        retries=2,
        jitter=30.0,
        pause_after_failures=3,
        starting_deadline=120.0,
        history=50,
    )
    assert app.cron_service == "worker"
    assert app.preview.env == {"GREETING": "preview"}


def test_results_are_frozen() -> None:
    app = parse_app_spec(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.services["web"].image = "evil"  # type: ignore[misc]


def test_single_service_shorthand() -> None:
    app = parse_app_spec("image: nginx:1.27\nports: [80]\n", default_name="blog")
    assert app.name == "blog"
    assert list(app.services) == ["app"]
    assert app.services["app"].image == "nginx:1.27"
    assert app.services["app"].ports == (80,)
    assert app.cron == CronSettings() and app.cron_service == "app"


def test_build_as_a_string_is_the_context() -> None:
    app = parse_app_spec("build: ./services/api\n")
    assert app.services["app"].build == BuildSpec(context="services/api")
    assert parse_app_spec("build: .\n").services["app"].build == BuildSpec()


def test_empty_values_mean_defaults() -> None:
    app = parse_app_spec(web("env:", "healthcheck:", "user:") + "cron:\nname:\n")
    assert app.name == "app"
    assert app.services["web"].env == {} and app.services["web"].healthcheck is None
    assert app.cron == CronSettings()


def test_env_keys_that_yaml_would_read_as_booleans_keep_their_text() -> None:
    app = parse_app_spec("image: x\nenv: {ON: 1, NO: no, null: ~x}\n")
    assert app.services["app"].env == {"ON": "1", "NO": "false", "null": "~x"}


def test_aliases_are_followed() -> None:
    text = "services:\n  a: &svc {image: x, env: {A: '1'}}\n  b: *svc\n"
    app = parse_app_spec(text)
    assert app.services["b"].env == {"A": "1"} and app.services["b"].name == "b"


# --- things that would reach the host ----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "privileged: true",
        "network_mode: host",
        "network: host",
        "pid: host",
        "ipc: host",
        "cap_add: [SYS_ADMIN]",
        "devices: [/dev/sda]",
        "security_opt: [seccomp=unconfined]",
        "userns_mode: host",
        "cgroup_parent: /",
        "sysctls: {net.ipv4.ip_forward: 1}",
        "volumes_from: [other]",
    ],
)
def test_hostile_keys_are_refused(line: str) -> None:
    error = only_error(web(line))
    key = line.split(":")[0]
    assert (error.line, error.field, error.message) == (4, f"services.web.{key}", HOST_POWER)


def test_hostile_key_message_renders_file_line_and_field() -> None:
    error = only_error(web("env: {A: b}", "privileged: true"))
    expected = ".hoody/app.yaml:5: services.web.privileged: " + HOST_POWER
    assert error.render() == expected


def test_hostile_keys_are_refused_in_shorthand_and_in_build() -> None:
    assert only_error("image: x\npid: host\n").field == "pid"
    error = only_error("build: {context: ., privileged: true}\n")
    assert (error.field, error.message) == ("build.privileged", HOST_POWER)


def test_other_networks_and_extra_hosts_are_just_unknown() -> None:
    assert only_error(web("network: bridge")).message.startswith("unknown key")
    assert only_error(web("extra_hosts: [a:1.2.3.4]")).message.startswith("unknown key")


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('volumes: {"/": /host}', "services.web.volumes"),
        ("volumes: {./data: /data}", "services.web.volumes"),
        ("volumes: {~/secrets: /s}", "services.web.volumes"),
        ("volumes: {var/run: /run}", "services.web.volumes"),
        ('volumes: ["/:/host"]', "services.web.volumes[0]"),
        ('volumes: ["data:/data", "/var/run/docker.sock:/s"]', "services.web.volumes[1]"),
        ('volumes: ["../x:/x:ro"]', "services.web.volumes[0]"),
    ],
)
def test_bind_mounts_are_refused(line: str, field: str) -> None:
    error = only_error(web(line))
    assert (error.line, error.field) == (4, field)
    assert error.message.startswith(BIND_MOUNT)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("build: ../x", "services.web.build"),
        ("build: /etc", "services.web.build"),
        ("build: {context: ../x}", "services.web.build.context"),
        ("build: {context: /etc}", "services.web.build.context"),
        ("build: {context: app/../../x}", "services.web.build.context"),
        ("build: {dockerfile: ../Dockerfile}", "services.web.build.dockerfile"),
        ("build: {dockerfile: /etc/passwd}", "services.web.build.dockerfile"),
    ],
)
def test_build_paths_must_stay_inside(line: str, field: str) -> None:
    text = f"services:\n  web:\n    {line}\n"
    error = only_error(text)
    assert (error.line, error.field) == (3, field)
    assert "is not a relative path inside" in error.message


# --- unknown keys, wrong types, bad values ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        (web("imgae: x"), "services.web.imgae", "did you mean 'image'?"),
        (web("resources: {memroy: 1g}"), "services.web.resources.memroy", "mean 'memory'?"),
        (web() + "cron: {timzone: UTC}\n", "cron.timzone", "did you mean 'timezone'?"),
        (web() + "servicess: {}\n", "servicess", "did you mean 'services'?"),
        (web("zzz: 1"), "services.web.zzz", "expected image, build, "),
    ],
)
def test_unknown_keys_name_the_field(text: str, field: str, hint: str) -> None:
    error = only_error(text)
    assert error.field == field
    assert error.message.startswith("unknown key") and hint in error.message


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("ports: 8080", "services.web.ports", "expected a list of port numbers, got a number"),
        ("ports: [http]", "services.web.ports[0]", "expected a port 1-65535"),
        ("ports: [70000]", "services.web.ports[0]", "expected a port 1-65535"),
        ("ports: [true]", "services.web.ports[0]", "got a boolean"),
        ("ports: [53/udp]", "services.web.ports[0]", "expected a port 1-65535"),
        ("ports: ['8080:80']", "services.web.ports[0]", "publishing host ports"),
        ("ports: [80, '80/tcp']", "services.web.ports[1]", "duplicate port 80"),
        ("env: [A=1]", "services.web.env", "expected a mapping, got a list"),
        ("env: {A: null}", "services.web.env.A", "has no value"),
        ("env: {A: [1]}", "services.web.env.A", "expected a string, got a list"),
        ("env: {1A: x}", "services.web.env.1A", "invalid name"),
        ("env: {A-B: x}", "services.web.env.A-B", "invalid name"),
        ("command: []", "services.web.command", "expected a non-empty list"),
        ("command: [sleep, [1]]", "services.web.command[1]", "expected a string"),
        ("command: {a: b}", "services.web.command", "got a mapping"),
        ("user: [root]", "services.web.user", "expected a string, got a list"),
        ("working_dir: app", "services.web.working_dir", "must start with '/'"),
        ("volumes: {Data: /data}", "services.web.volumes", "invalid volume name 'Data'"),
        ("volumes: {data: data}", "services.web.volumes.data", "expected an absolute path"),
        ('volumes: ["data:/data:ro"]', "services.web.volumes[0]", "mount options"),
        ('volumes: ["data"]', "services.web.volumes[0]", "expected an absolute path"),
        ('volumes: ["a:/d", "b:/d"]', "services.web.volumes[1]", "another volume is mounted"),
        ("healthcheck: yes", "services.web.healthcheck", "expected a mapping, got a boolean"),
        ("healthcheck: {}", "services.web.healthcheck", "needs 'http' (a path) or 'command'"),
        ("healthcheck: {http: x, port: 80}", "services.web.healthcheck.http", "start with '/'"),
        ("healthcheck: {http: /, command: x}", "services.web.healthcheck.command", "either"),
        ("healthcheck: {http: /}", "services.web.healthcheck.port", "service has no ports"),
        ("healthcheck: {command: x, port: 80}", "services.web.healthcheck.port", "only applies"),
        ("healthcheck: {command: x, retries: 0}", "services.web.healthcheck.retries", "least 1"),
        ("healthcheck: {command: x, interval: 0}", "services.web.healthcheck.interval", "0s"),
        ("healthcheck: {command: x, timeout: soon}", "services.web.healthcheck.timeout", "soon"),
        ("resources: {memory: 1m}", "services.web.resources.memory", "at least 4m"),
        ("resources: {memory: lots}", "services.web.resources.memory", "invalid memory size"),
        ("resources: {memory: [1]}", "services.web.resources.memory", "got a list"),
        ("resources: {cpus: 0}", "services.web.resources.cpus", "above 0"),
        ("resources: {cpus: -1}", "services.web.resources.cpus", "above 0"),
        ("build: {context: .}", "services.web.build", "either image or build"),
    ],
)
def test_bad_values(line: str, field: str, message: str) -> None:
    error = only_error(web(line))
    assert (error.line, error.field) == (4, field)
    assert message in error.message


@pytest.mark.parametrize(
    ("cron", "field", "message"),
    [
        ("{service: db}", "cron.service", "must be one of: web"),
        ("{timezone: Mars/Olympus}", "cron.timezone", "unknown time zone"),
        ("{timezone: America}", "cron.timezone", "unknown time zone"),
        ("{timezone: ../../etc/passwd}", "cron.timezone", "unknown time zone"),
        ("{concurrency: sometimes}", "cron.concurrency", "must be one of: forbid, allow"),
        ("{retries: '2'}", "cron.retries", "expected a whole number, got a string"),
        ("{retries: -1}", "cron.retries", "at least 0"),
        ("{pause_after_failures: 0}", "cron.pause_after_failures", "at least 1"),
        ("{timeout: 0}", "cron.timeout", "longer than 0s"),
        ("{jitter: -5s}", "cron.jitter", "invalid duration"),
        ("{history: 1.5}", "cron.history", "expected a whole number"),
        ("[web]", "cron", "expected a mapping, got a list"),
    ],
)
def test_bad_cron(cron: str, field: str, message: str) -> None:
    error = only_error(web() + f"cron: {cron}\n")
    assert (error.line, error.field) == (4, field)
    assert message in error.message


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("", None, None, "the file is empty"),
        ("# nothing yet\n", None, None, "the file is empty"),
        ("- web\n", 1, None, "expected a mapping of settings, got a list"),
        ("just text\n", 1, None, "got a string"),
        ("name: shop\n", 1, "services", "required"),
        ("name: Shop\nimage: x\n", 1, "name", "use up to 40 of a-z"),
        (f"name: {'a' * 41}\nimage: x\n", 1, "name", "use up to 40"),
        ("name: a--b\nimage: x\n", 1, "name", "single '-'"),
        ("services: {}\n", 1, "services", "needs at least one service"),
        ("services: [web]\n", 1, "services", "expected a mapping, got a list"),
        ("services:\n  Web_1: {image: x}\n", 2, "services.Web_1", "use at most 30"),
        ("services:\n  web:\n", 2, "services.web", "needs an image or a build"),
        ("services:\n  web: busybox\n", 2, "services.web", "expected a mapping, got a string"),
        (web() + "image: x\n", 4, "image", "not allowed next to 'services'"),
        ("image: x\nbuild: .\n", 2, "build", "either image or build"),
        ("command: [x]\n", 1, None, "needs an image or a build"),
        ("image: x\npreview: {env: {A: ~}}\n", 2, "preview.env.A", "has no value"),
        ("image: x\npreview: {image: y}\n", 2, "preview.image", "unknown key"),
        ("base: &b {image: x}\nimage: x\n", 1, "base", "unknown key"),
        ("services:\n  web:\n    image: ''\n", 3, "services.web.image", "expected an image"),
        ("image: x\n<<: {ports: [1]}\n", 2, "<<", "merge keys (<<) are not supported"),
        ("image: x\n? [a]\n: b\n", 2, None, "keys must be names"),
    ],
)
def test_file_level_problems(text: str, line: int | None, field: str | None, message: str) -> None:
    error = only_error(text)
    assert (error.line, error.field) == (line, field)
    assert message in error.message


def test_duplicate_keys() -> None:
    error = only_error(web("ports: [80]", "ports: [81]"))
    assert (error.line, error.field) == (5, "services.web.ports")
    assert error.message == "duplicate key (first defined on line 4)"
    error = only_error("services:\n  web: {image: x}\n  web: {image: y}\n")
    assert (error.line, error.field) == (3, "services.web")
    assert only_error(web("env: {A: '1', A: '2'}")).field == "services.web.env.A"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: shop\nservices\n  web:\n    image: x\n", 3),
        ("services:\n  web: {image: x\n", 3),
        ('name: "shop\n', 2),
        ("services:\n\t web: {}\n", 2),
        ("image: x\n---\nimage: y\n", 2),
        ("image: x\nenv: {A: \x07}\n", 2),
    ],
)
def test_yaml_syntax_errors_carry_the_line(text: str, line: int) -> None:
    error = only_error(text)
    assert error.line == line and error.field is None
    assert error.message.startswith("invalid YAML: ")


def test_several_errors_reported_at_once_sorted_by_line() -> None:
    text = dedent(
        """\
        services:
          web:
            image: busybox
            privileged: true
            ports: [0]
        cron: {service: db}
        """
    )
    with pytest.raises(SpecErrors) as caught:
        parse_app_spec(text, file="repo/.hoody/app.yaml")
    errors = caught.value.errors
    assert [(e.line, e.field) for e in errors] == [
        (4, "services.web.privileged"),
        (5, "services.web.ports[0]"),
        (6, "cron.service"),
    ]
    assert str(caught.value).splitlines()[0].startswith("repo/.hoody/app.yaml:4: ")
    assert caught.value.line == 4  # SpecErrors takes the first error's place


def test_errors_in_unrelated_sections_do_not_hide_each_other() -> None:
    errors = errors_of(web("imgae: x", "env: {A: ~}") + "cron: {timezone: Nowhere}\n")
    assert [e.field for e in errors] == [
        "services.web.imgae",
        "services.web.env.A",
        "cron.timezone",
    ]
    errors = errors_of("name: shop\ncron: {retries: x}\npreview: {env: []}\n")
    assert [e.field for e in errors] == ["services", "cron.retries", "preview.env"]


# --- durations and sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        (".5", 0.5),
        ("30", 30.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("1d", 86400.0),
        (" 10S ", 10.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "s", "5x", "-5s", "-1", "1 h", "1.h", "inf", "nan", True, float("inf"), -2]
)
def test_parse_duration_rejects(value: str | float) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1048576, 1048576),
        ("1048576", 1048576),
        ("512b", 512),
        ("1k", 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("256m", 256 * 1024**2),
        ("256M", 256 * 1024**2),
        ("256mb", 256 * 1024**2),
        ("256Mi", 256 * 1024**2),
        ("2g", 2 * 1024**3),
        ("2GB", 2 * 1024**3),
        ("1.5g", 3 * 1024**3 // 2),
        ("1 gi", 1024**3),
        ("1t", 1024**4),
    ],
)
def test_parse_memory(value: str | int, size: int) -> None:
    assert parse_memory(value) == size


@pytest.mark.parametrize("value", ["", "m", "lots", "1.5", "-1m", "1x", "1i", "5mbb", -1, True])
def test_parse_memory_rejects(value: str | int) -> None:
    with pytest.raises(ValueError, match="invalid memory size"):
        parse_memory(value)


# --- robustness against arbitrary input ---------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=12), st.floats()
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["image", "build", "env", "x", "/", "web"]), inner)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["name", "services", "cron", "preview", "image", "build", "ports", "volumes", "privileged"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_any_yaml_gives_a_spec_or_spec_errors(document: dict[str, object]) -> None:
    import yaml

    try:
        parse_app_spec(yaml.safe_dump(document))
    except SpecErrors as exc:
        assert exc.errors and all(isinstance(e, SpecError) for e in exc.errors)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_spec_or_spec_errors(text: str) -> None:
    try:
        parse_app_spec(text)
    except SpecErrors as exc:
        assert exc.errors
