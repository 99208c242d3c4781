"""The GroupLens MovieLens releases this project knows how to fetch and parse.

Each entry pins the official URL and archive checksum, the folder inside the
archive, the member files its parser needs and, where they are known, the sha256
of each member (so an already-extracted mirror folder can be verified too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from movierec.errors import ConfigError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
# ml-100k's official folds: u1..u5 (5-fold cross-validation, disjoint 20% test sets) and
# ua/ub (exactly 10 ratings per user in test).
ML100K_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


@dataclass(frozen=True)
class Release:
    """One official MovieLens release."""

    name: str
    archive: str
    folder: str
    layout: str  # parser: "ml-100k", "dat" (ml-1m / ml-10m), "csv" (ml-20m and later)
    members: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    member_sha256: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    has_demographics: bool = False
    # Published number of ratings: the structural check of a copy whose members have no
    # published hash (an extracted folder in a mirror).
    n_ratings: int | None = None
    # Official train/test folds shipped with the release (`<fold>.base` / `<fold>.test`),
    # for `data.split.strategy: official`.
    folds: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.archive}"


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            name="ml-100k",
            archive="ml-100k.zip",
            folder="ml-100k",
            layout="ml-100k",
            members=(
                "u.data",
                "u.item",
                "u.user",
                "u.genre",
                *(f"{f}.{part}" for f in ML100K_FOLDS for part in ("base", "test")),
            ),
            size=4_924_029,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            member_sha256={
                "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
                "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
                "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
                "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
                "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
                "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
                "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
                "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
                "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
                "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
                "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
                "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
                "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
                "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
                "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
                "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
                "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
            },
            encoding="latin-1",
            has_demographics=True,
            n_ratings=100_000,
            folds=ML100K_FOLDS,
        ),
        Release(
            name="ml-1m",
            archive="ml-1m.zip",
            folder="ml-1m",
            layout="dat",
            members=("ratings.dat", "movies.dat", "users.dat"),
            size=5_917_549,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            md5="c4d9eecfca2ab87c1945afe126590906",
            member_sha256={
                "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
                "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
            },
            encoding="latin-1",
            has_demographics=True,
            n_ratings=1_000_209,
        ),
        Release(
            name="ml-10m",
            archive="ml-10m.zip",
            folder="ml-10M100K",
            layout="dat",
            members=("ratings.dat", "movies.dat"),
            size=65_566_137,
            sha256="813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
            md5="ce571fd55effeba0271552578f2648bd",
            n_ratings=10_000_054,
        ),
        Release(
            name="ml-20m",
            archive="ml-20m.zip",
            folder="ml-20m",
            layout="csv",
            members=("ratings.csv", "movies.csv"),
            size=198_702_078,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            n_ratings=20_000_263,
        ),
        Release(
            name="ml-25m",
            archive="ml-25m.zip",
            folder="ml-25m",
            layout="csv",
            members=("ratings.csv", "movies.csv"),
            size=261_978_986,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            n_ratings=25_000_095,
        ),
        Release(
            name="ml-32m",
            archive="ml-32m.zip",
            folder="ml-32m",
            layout="csv",
            members=("ratings.csv", "movies.csv"),
            md5="d472be332d4daa821edc399621853b57",
            n_ratings=32_000_204,
        ),
        Release(
            name="ml-latest-small",
            archive="ml-latest-small.zip",
            folder="ml-latest-small",
            layout="csv",
            members=("ratings.csv", "movies.csv"),
            size=978_202,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            md5="31a303aabbc519bd33d025e44d6c2570",
            member_sha256={
                "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
                "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
            },
            n_ratings=100_836,
        ),
    )
}


def get_release(name: str) -> Release:
    """Look a release up by name, with a clear error for unknown names."""
    try:
        return RELEASES[name]
    except KeyError:
        raise ConfigError(
            f"params.yaml: `data.dataset` is {name!r}, not a GroupLens release; "
            f"use one of: {', '.join(RELEASES)} (or custom, synthetic)"
        ) from None
