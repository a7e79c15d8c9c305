"""Reading sample lines (CSV or JSON) into numbers, and telling exactly why a line is bad.

A sample line holds one reading of every input field: CSV (comma separated, or
whitespace separated as in the original C-MAPSS files) or a JSON object keyed by
field name. A bad line raises SampleError with a short reason code; it never
touches any window state.
"""

import datetime
import json
import math
import re
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

MAX_LINE_BYTES = 64 * 1024
_ASCII_SPACE = re.compile(r"[ \t\r\f\v]+")


class SampleError(ValueError):
    """A line that cannot become a sample. `reason` is a stable short code."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


@dataclass
class Sample:
    stream: str
    time: float
    # float64, the manifest's feature columns, NaN where missing (None: read by C straight into the window
    # kernel's input buffers, as blocks.py reads a line on its own)
    values: np.ndarray
    settings: np.ndarray  # float64, the operating-setting fields that pick a condition (often none); None: as values


def format_line(row, input_spec):
    """A CSV sample line for one row of all input fields; the exact inverse of parsing."""
    return ",".join(field_text(name, value, input_spec) for name, value in zip(input_spec["fields"], row))


def field_text(name, value, input_spec):
    """How a field's value is written in a sample line: repr() keeps floats exact,
    integral stream ids and times print as integers (so unit 1 is stream "1")."""
    value = float(value)
    if name in (input_spec["stream_field"], input_spec["time_field"]) and value.is_integer():
        return str(int(value))
    return repr(value)


def split_line(text):
    """The fields of a CSV line: separated by semicolons, else commas, else ASCII white space (tabs too)."""
    if ";" in text:
        return text.split(";")
    if "," in text:
        return text.split(",")
    # str.split() would also split at non-ASCII spaces (U+00A0); the documented syntax is ASCII
    return text.split() if text.isascii() else _ASCII_SPACE.split(text)


def iso_seconds(token, name):
    """Seconds since the epoch of an ISO 8601 time ("2026-03-01T12:00:00.5Z", "+02:00", or naive = UTC)."""
    text = token.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise SampleError(
            "bad-time", f"field {name!r} is neither a number nor an ISO 8601 time: {token[:40]!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


_NO_SETTINGS = np.zeros(0)


def _finite_numbers(tokens, indices):
    """The fields at indices as float64 when every one is a finite ASCII number (the common case, read
    in one go); else None, and the field-by-field path (_number, which reads what this reads) says
    what is wrong."""
    fields = [tokens[i] for i in indices]
    joined = "".join(fields)
    if not joined.isascii() or "_" in joined:
        return None
    try:
        values = list(map(float, fields))
    except ValueError:  # an empty field, or text
        return None
    # inf or NaN anywhere makes the sum so; a sum past the largest float only sends the line the long way
    return np.array(values) if math.isfinite(sum(values)) else None


def is_number(token):
    """True when float() reads the token (the header test: a header line holds no number)."""
    try:
        float(token)
    except ValueError:
        return False
    return True


ONE_STREAM = "-"  # the stream id of every sample when the data has no stream field
MAX_SOURCES = 256  # sources whose header mapping is kept


class SampleParser:
    """Parses lines for one manifest input spec; built once, called per line."""

    def __init__(self, input_spec, imputable, settings=()):
        self.fields = list(input_spec["fields"])
        self.settings = list(settings)
        self.stream_field = input_spec["stream_field"]
        self.time_field = input_spec["time_field"]
        self.features = list(input_spec["features"])
        self._may_be_missing = np.array([name in imputable for name in self.features])
        self.arrivals = 0  # without a time field, a sample's time is its arrival number
        self.default = self._columns(self.fields)  # lines before any header: the manifest's order
        self.by_source = OrderedDict()  # source (a TCP connection) -> its columns, from its own header line
        self.header = None  # the columns of the last header line, when one was seen

    def _columns(self, names):
        """Where each field the model needs sits in a line with these columns:
        (width, stream index, time index, feature indices, setting indices); None: one stream / arrival order."""
        where = {name: i for i, name in enumerate(names)}
        return (
            len(names),
            where.get(self.stream_field),
            where.get(self.time_field),
            [where[name] for name in self.features],
            [where[name] for name in self.settings],
        )

    def parse(self, text, source=0):
        """Turn one stripped line into a Sample; None for a CSV header line; raise SampleError for a bad line.

        A header line (no number in it, and at least one field name) maps the columns by name for the
        lines of the same source (a file, stdin, one TCP connection) from then on: any order, extra
        columns ignored; one that lacks a field the model needs is an error, and so is every line of
        that source after it until a good header comes.
        """
        if text.startswith("{"):
            return self._parse_json(text)
        tokens = split_line(text)
        try:
            return self._parse_tokens(tokens, self.by_source.get(source, self.default))
        except SampleError:
            if not self._is_header(tokens):
                raise
        return self._use_header([t.strip() for t in tokens], source)

    def _parse_tokens(self, tokens, columns):
        if not isinstance(columns, tuple):  # the names a bad header lacked
            raise SampleError("missing-column", f"the last header line lacks {', '.join(columns)}")
        width, stream_i, time_i, feature_i, setting_i = columns
        if len(tokens) != width:
            raise SampleError("field-count", f"expected {width} fields, got {len(tokens)}")
        stream = tokens[stream_i].strip() if stream_i is not None else ONE_STREAM
        time = self._time(tokens[time_i]) if time_i is not None else self.arrival()
        values = _finite_numbers(tokens, feature_i)
        if values is not None and not setting_i and stream:
            return Sample(stream, time, values, _NO_SETTINGS)
        values = [self._number(tokens[i], name, missing_ok=True) for i, name in zip(feature_i, self.features)]
        settings = [self._number(tokens[i], name) for i, name in zip(setting_i, self.settings)]
        return self._sample(stream, time, values, settings)

    def _is_header(self, tokens):
        names = {t.strip() for t in tokens}
        return bool(names & set(self.fields)) and not any(is_number(t) for t in tokens)

    def _use_header(self, names, source):
        needed = [name for name in (self.stream_field, self.time_field) if name] + [*self.features, *self.settings]
        lacking = [name for name in dict.fromkeys(needed) if name not in names]
        self.header = names
        self.by_source[source] = lacking or self._columns(names)
        self.by_source.move_to_end(source)
        while len(self.by_source) > MAX_SOURCES:  # sources long gone (closed connections)
            self.by_source.popitem(last=False)
        if lacking:
            raise SampleError("missing-column", f"the header line lacks {', '.join(lacking)}")
        return None

    def _parse_json(self, text):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SampleError("bad-json", f"invalid JSON: {exc.msg} at column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:  # an integer of over 4300 digits; nesting past the stack
            raise SampleError("bad-json", f"invalid JSON: {str(exc)[:80]}") from None
        if not isinstance(obj, dict):
            raise SampleError("bad-json", "a JSON sample must be an object")
        needed = [name for name in (self.stream_field, self.time_field) if name]
        missing = [name for name in (*needed, *self.features, *self.settings) if name not in obj]
        if missing:
            raise SampleError("missing-field", f"missing field(s): {', '.join(missing[:5])}")
        stream = obj[self.stream_field] if self.stream_field else ONE_STREAM
        if not isinstance(stream, (str, int)) or isinstance(stream, bool):
            raise SampleError("bad-stream", f"field {self.stream_field!r} must be a string or integer")
        time = self._time(obj[self.time_field]) if self.time_field else self.arrival()
        values = [self._number(obj[name], name, missing_ok=True) for name in self.features]
        settings = [self._number(obj[name], name) for name in self.settings]
        return self._sample(str(stream), time, values, settings)

    def arrival(self):
        """The time of a sample when the data has no time field: its arrival number."""
        self.arrivals += 1
        return float(self.arrivals)

    def _time(self, token):
        """The time field: a number, or an ISO 8601 date and time (seconds since the epoch; naive is UTC)."""
        if isinstance(token, str) and token.strip()[4:5] == "-" and token.strip()[:4].isdigit():  # YYYY-...
            return iso_seconds(token, self.time_field)
        return self._number(token, self.time_field)

    def _number(self, token, name, missing_ok=False):
        if token is None or (isinstance(token, str) and not token.strip()):
            if missing_ok:
                return math.nan
            raise SampleError("missing-value", f"field {name!r} is empty")
        if isinstance(token, bool) or not isinstance(token, (str, int, float)):
            raise SampleError("not-a-number", f"field {name!r} is not a number")
        if isinstance(token, str) and (not token.isascii() or "_" in token):
            # float() also takes 1_000, Arabic-Indic and fullwidth digits, non-breaking spaces
            raise SampleError("not-a-number", f"field {name!r} is not an ASCII number: {token[:40]!r}")
        try:
            value = float(token)
        except ValueError:
            raise SampleError("not-a-number", f"field {name!r} is not a number: {str(token)[:40]!r}") from None
        except OverflowError:  # a JSON integer past the largest float
            raise SampleError("not-finite", f"field {name!r} is too large for a float") from None
        if math.isinf(value) or (math.isnan(value) and not missing_ok):
            raise SampleError("not-finite", f"field {name!r} is {value}")
        return value

    def _sample(self, stream, time, values, settings):
        if not stream:
            raise SampleError("bad-stream", f"field {self.stream_field!r} is empty")
        array = np.array(values, dtype=np.float64)
        not_allowed = np.isnan(array) & ~self._may_be_missing
        if not_allowed.any():
            name = self.features[int(np.flatnonzero(not_allowed)[0])]
            raise SampleError(
                "missing-value", f"field {name!r} is NaN or empty, and the bundle has no imputation for it"
            )
        return Sample(stream, time, array, np.array(settings, dtype=np.float64))
