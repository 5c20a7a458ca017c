"""Sharing a bundle: reproducible zip export with checksums, and safe unzipping.

- :mod:`.bundle_zip`: ``dist/<bundle_name>_v<version>.zip`` (``configs/export.json``'s ``export``, and
  ``bundle/<name>/configs/export.json`` for the sibling bundles);
- :mod:`.safe_unzip`: extraction that refuses ``..``, absolute names, links, zip bombs and unverified files;
- :mod:`.checksums`: ``CHECKSUMS.sha256`` in ``sha256sum`` format.
"""

from .bundle_zip import (
    BundleVersionError,
    bundle_zip_name,
    check_version,
    collect_bundle_files,
    export_bundle_zip,
    package_root,
)
from .checksums import CHECKSUM_FILE, ChecksumError, sha256_file, verify_checksums
from .safe_unzip import (
    ArchiveMemberTooLargeError,
    ArchiveTooLargeError,
    CompressionRatioError,
    ExtractLimits,
    MissingChecksumsError,
    TooManyMembersError,
    UnsafeArchiveError,
    ZipBombError,
    check_member,
    safe_extract,
)

__all__ = [
    "CHECKSUM_FILE",
    "ArchiveMemberTooLargeError",
    "ArchiveTooLargeError",
    "CompressionRatioError",
    "ExtractLimits",
    "MissingChecksumsError",
    "TooManyMembersError",
    "ZipBombError",
    "BundleVersionError",
    "ChecksumError",
    "UnsafeArchiveError",
    "bundle_zip_name",
    "check_member",
    "check_version",
    "collect_bundle_files",
    "export_bundle_zip",
    "package_root",
    "safe_extract",
    "sha256_file",
    "verify_checksums",
]
