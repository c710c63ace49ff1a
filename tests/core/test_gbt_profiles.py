"""GB/T 26875.3 vendor profiles: the shipped file, user files, validation and checksums."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewatch.core.gbt_profiles import (
    BUILTIN_PROFILES,
    STANDARD,
    Profile,
    ProfileError,
    load_profiles,
)


def test_the_shipped_profiles() -> None:
    profiles = load_profiles()
    assert sorted(profiles) == ["standard", "xor-checksum", "year-first"]
    assert profiles["standard"] == STANDARD
    assert (STANDARD.time_order, STANDARD.checksum, STANDARD.utc_offset_minutes) == (
        "smhDMY",
        "sum8",
        480,
    )
    assert profiles["year-first"].time_order == "YMDhms"
    assert profiles["year-first"].checksum == "sum8"
    assert profiles["xor-checksum"].checksum == "xor8"
    assert profiles["xor-checksum"].component_types == {201: "vendor gas detector"}


def test_the_profile_file_is_package_data() -> None:
    # pyproject's [tool.setuptools.package-data] ships core/*.toml; the file must sit there.
    assert BUILTIN_PROFILES.parent.name == "core"
    assert BUILTIN_PROFILES.suffix == ".toml"
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    assert '"core/*.toml"' in pyproject.read_text(encoding="utf-8")


def test_component_names_come_from_the_vendor_then_the_standard() -> None:
    xor = load_profiles()["xor-checksum"]
    assert xor.component_name(201) == "vendor gas detector"
    assert xor.component_name(41) == "point smoke detector"  # domain.COMPONENT_TYPES
    assert STANDARD.component_name(201) is None


def test_checksums() -> None:
    data = bytes([0x01, 0x02, 0xFF, 0x80])
    assert STANDARD.checksum_of(data) == (1 + 2 + 255 + 128) % 256 == 0x82
    xor = Profile("x", checksum="xor8")
    assert xor.checksum_of(data) == 0x01 ^ 0x02 ^ 0xFF ^ 0x80 == 0x7C
    assert xor.checksum_of(b"") == STANDARD.checksum_of(b"") == 0


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=1100))
def test_xor8_matches_a_byte_loop(data: bytes) -> None:
    expected = 0
    for b in data:
        expected ^= b
    assert Profile("x", checksum="xor8").checksum_of(data) == expected
    assert STANDARD.checksum_of(data) == sum(data) % 256


def test_profiles_are_hashable() -> None:
    profile = load_profiles()["xor-checksum"]
    assert {profile: 1}[profile] == 1


def test_a_user_file_adds_and_overrides_profiles(tmp_path: Path) -> None:
    path = tmp_path / "vendors.toml"
    path.write_text(
        """
[profiles.acme]
time_order = "YMDhms"
checksum = "xor8"
utc_offset_minutes = 0
[profiles.acme.component_types]
128 = "acme beam detector"
254 = "acme flame detector"

[profiles.year-first]
time_order = "YMDhms"
utc_offset_minutes = 540
""",
        encoding="utf-8",
    )
    profiles = load_profiles(path)
    assert profiles["acme"] == Profile(
        "acme", "YMDhms", "xor8", 0, {128: "acme beam detector", 254: "acme flame detector"}
    )
    assert profiles["year-first"].utc_offset_minutes == 540
    assert profiles["standard"] == STANDARD
    assert profiles["xor-checksum"].checksum == "xor8"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[profiles.standard]\nchecksum = 'xor8'\n", "cannot be redefined"),
        ("[profiles.a\n", "not valid TOML"),
        ("[vendors.a]\n", "unknown top-level"),
        ("profiles = 3\n", "table of tables"),
        ("[profiles]\na = 1\n", "must be a table"),
        ("[profiles.a]\ncrc = 'x'\n", "unknown key"),
        ("[profiles.a]\nchecksum = 'crc16'\n", "sum8, xor8"),
        ("[profiles.a]\nchecksum = 8\n", "must be strings"),
        ("[profiles.a]\ntime_order = 'YMDhmm'\n", "not an order of smhDMY"),
        ("[profiles.a]\nutc_offset_minutes = '+8'\n", "must be an integer"),
        ("[profiles.a]\nutc_offset_minutes = true\n", "must be an integer"),
        ("[profiles.a]\nutc_offset_minutes = 900\n", "-720..840"),
        ("[profiles.a]\ncomponent_types = 3\n", "table of code"),
        ("[profiles.a.component_types]\ngas = 'x'\n", "want 201"),
        ("[profiles.a.component_types]\n201 = 5\n", "want 201"),
        ("[profiles.a.component_types]\n300 = 'x'\n", "1..255"),
        ("[profiles.a.component_types]\n201 = ''\n", "non-empty"),
        ("[profiles.Acme]\n", "profile name"),
    ],
)
def test_bad_user_files_are_refused(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "vendors.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=match) as err:
        load_profiles(path)
    assert str(path) in str(err.value)


def test_a_missing_or_undecodable_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profiles(tmp_path / "absent.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[profiles.a]\n# \xff\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profiles(latin)


def test_profile_refuses_bad_values_directly() -> None:
    with pytest.raises(ProfileError, match="time_order"):
        Profile("a", time_order="smhDM")
    with pytest.raises(ProfileError, match="checksum"):
        Profile("a", checksum="sum16")
    assert isinstance(ProfileError("x"), ValueError)
