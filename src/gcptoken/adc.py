"""Moved to ``gcptoken.credentials.adc``; this name keeps working for one release."""

from gcptoken.credentials.adc import (
    ADC_FILE,
    DEFAULT_METADATA_IP,
    Discovery,
    Source,
    adc_file_path,
    default_credentials,
    find_credentials,
    metadata_server_answers,
)

__all__ = [
    "ADC_FILE",
    "DEFAULT_METADATA_IP",
    "Discovery",
    "Source",
    "adc_file_path",
    "default_credentials",
    "find_credentials",
    "metadata_server_answers",
]
