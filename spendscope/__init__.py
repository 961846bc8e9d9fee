"""SpendScope: what every OpenAI call costs, per user, feature and tenant, as OpenTelemetry data.

import spendscope
spendscope.configure()                     # providers from OTEL_* variables, instruments openai
with spendscope.attributes(user="u-42", endpoint="cv-parsing", tenant="acme"):
    client.chat.completions.create(...)
"""

from spendscope._version import __version__
from spendscope.attribution import attributes
from spendscope.config import Configuration, configure
from spendscope.instrumentation import instrument_openai, uninstrument_openai
from spendscope.settings import ConfigurationError

__all__ = [
    "Configuration",
    "ConfigurationError",
    "__version__",
    "attributes",
    "configure",
    "instrument_openai",
    "uninstrument_openai",
]
