"""The service-wide device (``TGQR_DEVICE_*``) and the validation interval
(``TGQR_VALIDATE_SECONDS``) from the environment."""

from __future__ import annotations

import pytest

from actors.service import ConfigError, ServiceConfig
from actors.telegram import Device


def test_defaults_name_tgqr_and_validate_every_15_minutes() -> None:
    config = ServiceConfig.from_env({})
    assert config.device == Device()
    assert config.device.label == "tgqr, Linux"
    assert config.policy.validate_every_s == 900.0


def test_every_device_variable_is_read() -> None:
    config = ServiceConfig.from_env(
        {
            "TGQR_DEVICE_MODEL": "Acme Parser",
            "TGQR_DEVICE_SYSTEM": "Debian 12",
            "TGQR_DEVICE_APP_VERSION": "4.2",
            "TGQR_DEVICE_LANG": "ru",
            "TGQR_DEVICE_SYSTEM_LANG": "ru-ru",
            "TGQR_VALIDATE_SECONDS": "60",
        }
    )
    assert config.device == Device("Acme Parser", "Debian 12", "4.2", "ru", "ru-ru")
    assert config.policy.validate_every_s == 60.0


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"TGQR_DEVICE_MODEL": "x" * 65}, "TGQR_DEVICE_MODEL must be at most 64 printable"),
        ({"TGQR_DEVICE_SYSTEM": "Linux\x1b[31m"}, "TGQR_DEVICE_SYSTEM must be at most 64"),
        ({"TGQR_VALIDATE_SECONDS": "0"}, "TGQR_VALIDATE_SECONDS must be at least 1"),
        ({"TGQR_VALIDATE_SECONDS": "soon"}, "TGQR_VALIDATE_SECONDS must be an integer"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        ServiceConfig.from_env(env)


def test_a_tenants_fields_override_the_services_device() -> None:
    """Only the fields a tenant gave replace the service's; the rest stay."""
    service = Device("Svc", "BSD", "9", "fr", "fr")
    assert service.overridden(model="Acme", lang="") == Device("Acme", "BSD", "9", "fr", "fr")
