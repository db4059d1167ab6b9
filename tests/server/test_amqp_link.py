"""Ingest's AMQP link to RabbitMQ (README, the broker cluster): over TLS exactly when
``amqp_ca_file`` is set, plain only on loopback unless allowed, and errors that name the node
but never the URL's password. Checked before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.ingest.amqp import connection_parameters
from server.settings import ServerSettings
from tests.support.tls import ThrowawayCA

SECRET = "s3cret-pass"


def settings(**kw: object) -> ServerSettings:
    return ServerSettings.model_validate({"ingest_source": "amqp", **kw})


def test_amqps_urls_with_the_ca_make_tls_parameters_that_check_the_host(tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)
    s = settings(
        amqp_urls=[f"amqps://ingest:{SECRET}@mq1.centre.kz:5671/%2F", "amqps://u:p@127.0.0.1"],
        amqp_ca_file=ca.ca_file,
    )
    params = connection_parameters(s)
    assert [(p.host, p.port) for p in params] == [("mq1.centre.kz", 5671), ("127.0.0.1", 5671)]
    for p in params:
        assert p.ssl_options is not None
        assert p.ssl_options.server_hostname == p.host
        ctx = p.ssl_options.context
        assert ctx.check_hostname and ctx.minimum_version.name == "TLSv1_2"
        assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "test CA"),),)
    # plain on loopback stays possible without a CA (the demo, the bench)
    plain = connection_parameters(settings(amqp_urls=["amqp://u:p@127.0.0.1:5672/%2F"]))
    assert plain[0].ssl_options is None


@pytest.mark.parametrize(
    ("urls", "ca", "allow", "problem"),
    [
        (["amqp://u:{pw}@127.0.0.1:5672/%2F"], True, False, "amqp_urls.0: plain AMQP to 127"),
        (
            ["amqps://u:{pw}@mq1:5671/%2F", "amqp://u:{pw}@mq2/%2F"],
            True,
            True,
            "amqp_urls.1: plain AMQP to mq2:5672 is refused: amqp_ca_file is set",
        ),
        (["amqps://u:{pw}@mq1/%2F"], False, False, "amqps:// to mq1:5671 needs amqp_ca_file"),
        (["amqp://u:{pw}@10.0.0.7/%2F"], False, False, "refused off loopback"),
        (["http://u:{pw}@mq1/"], False, False, "the scheme must be amqps://"),
        (["amqps://u:{pw}@mq1:99999/%2F"], True, False, "not an AMQP URL"),
    ],
)
def test_a_link_that_is_not_safe_is_refused_naming_the_node_not_the_password(
    tmp_path: Path, urls: list[str], ca: bool, allow: bool, problem: str
) -> None:
    extra: dict[str, object] = {"amqp_allow_plain": allow}
    if ca:
        extra["amqp_ca_file"] = ThrowawayCA(tmp_path).ca_file
    with pytest.raises(ValidationError, match=problem) as err:
        settings(amqp_urls=[u.format(pw=SECRET) for u in urls], **extra)
    assert SECRET not in str(err.value)


def test_plain_off_loopback_only_when_allowed_and_a_bad_ca_file_is_named(tmp_path: Path) -> None:
    settings(amqp_urls=["amqp://u:p@10.0.0.7/%2F"], amqp_allow_plain=True)
    with pytest.raises(ValidationError, match=r"amqp_ca_file: .*missing\.pem: cannot read"):
        settings(amqp_urls=["amqps://u:p@mq1/%2F"], amqp_ca_file=tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match=r"amqp_ca_file: .*not a PEM CA certificate"):
        settings(amqp_urls=["amqps://u:p@mq1/%2F"], amqp_ca_file=junk)
