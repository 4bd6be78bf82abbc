"""Letter templates cannot allocate their way past the limits: refused before building."""

from __future__ import annotations

import tracemalloc

import pytest

from server.letters.templates import TemplateRenderError, render
from server.sandbox import MAX_VALUE


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 200000000 }}",
        "{{ 200000000 * 'a' }}",
        "{{ [1] * 200000000 }}",
        "{{ ('a' * 900000) + ('b' * 900000) }}",
        "{{ 10 ** 100000000 }}",
        "{{ '%200000000s' % 'a' }}",
        "{{ '{:>200000000}'.format('a') }}",
        "{{ 'a'.rjust(200000000) }}",
        "{{ 'a'|center(200000000) }}",
        "{{ 'a\\nb'|indent(200000000) }}",
        "{{ '%200000000d'|format(1) }}",
        "{{ lipsum(100000000) }}",
    ],
)
def test_huge_values_are_refused_before_allocation(source: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateRenderError) as caught:
            render(source, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MAX_VALUE, f"{source}: {peak} bytes allocated"
    assert caught.value.code == "template_error"


def test_ordinary_arithmetic_and_padding_still_work() -> None:
    text = render(
        "{{ '-' * 20 }} {{ name + '先生' }} {{ 2 ** 10 }} {{ '%05d' % 42 }} "
        "{{ '{:>6}'.format('ok') }} {{ 'x'|center(5) }} 编号 12345678 {{ '第 %s 号' % 9 }}",
        {"name": "张"},
    )
    assert text.rstrip("\n") == "-" * 20 + " 张先生 1024 00042     ok   x   编号 12345678 第 9 号"
