"""The tool signatures a server without tool schemas reads in the system prompt word their types
as ``pipeline.tooldocs`` does for every reader (``asynctool tools --full``, the evolve prompts)."""

from __future__ import annotations

import re

import pytest
from instances import instance_of

from pipeline.cli import main
from pipeline.harness.protocol import system_prompt
from pipeline.models import Instance
from pipeline.seeds import load_seeds


def _instance(*envs: str) -> Instance:
    """One seed task of each environment, as one instance."""
    seeds = load_seeds()
    tasks = [next(task for task in seeds if task.envs == [env]) for env in envs]
    return instance_of(tasks, "signatures")


def _tool_lines(prompt: str) -> list[str]:
    return [line for line in prompt.splitlines() if re.match(r"^- \w+__\w+\(", line)]


def test_signatures_word_choices_lists_and_unions() -> None:
    prompt = system_prompt(_instance("trading", "vehicle", "tickets"), list_signatures=True)
    lines = _tool_lines(prompt)
    assert len(lines) > 20
    # choices with "or" (no comma: commas separate the parameters), lists as "list of"
    assert (
        '- trading__place_order(order_type: "Buy" or "Sell", symbol: string, price: number,'
        " amount: integer) - "
    ) in prompt
    assert "- trading__filter_stocks_by_price(stocks: list of string, min_price: number," in prompt
    assert '- vehicle__adjustClimateControl(temperature: number, unit: "celsius" or' in prompt
    assert '"fahrenheit" = "celsius", fanSpeed: integer = 50, ' in prompt
    assert "- tickets__get_ticket(ticket_id: integer or string) - " in prompt
    assert not any("|" in line.split(" - ")[0] or "list[" in line for line in lines)


def test_the_prompt_and_the_tools_command_word_a_type_alike(
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompt = system_prompt(_instance("trading", "maths"), list_signatures=True)
    assert main(["tools", "--full"]) == 0
    full = capsys.readouterr().out
    assert '- `order_type` ("Buy" or "Sell"; ' in full
    assert 'order_type: "Buy" or "Sell",' in prompt


def test_without_signatures_the_prompt_names_tools_only() -> None:
    prompt = system_prompt(_instance("trading", "maths"), list_signatures=False)
    assert "- trading__place_order - " in prompt
    assert "trading__place_order(" not in prompt
