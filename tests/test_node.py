"""The daemons' run loop and log: a long wait is said once, the end is said, every line has its time."""

from __future__ import annotations

import re

from dgpt.node import Action, Node, Step, timestamped


class Scripted(Node):
    def __init__(self, steps):
        self.steps, self.lines = list(steps), []
        self.log = self.lines.append

    def tick(self) -> Step:
        return self.steps.pop(0)

    def finished(self, step: Step) -> bool:
        return step.action is Action.DONE


def test_the_run_loop_says_what_it_waits_for_once_and_why_it_stops():
    node = Scripted([Step(Action.WAITING, 3, "for the reveal window")] * 3 + [Step(Action.REVEALED, 3, "bafy"),
                    Step(Action.WAITING, 3, "for the aggregator"), Step(Action.WAITING, 3, "for the aggregator"),
                    Step(Action.DONE, 0, "plan complete")])
    node.run(poll=0)
    assert node.lines == ["round 3: waiting (for the reveal window)", "round 3: waiting (for the aggregator)", "done (plan complete): finished"]


def test_daemon_lines_carry_the_time_the_role_and_the_key(capsys):
    timestamped("oracle", "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65")("round 1: committed to bafy")
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ oracle 0x15d34AAf: round 1: committed to bafy", line), line


def test_a_wait_for_a_deadline_says_the_time_left_once():
    from types import SimpleNamespace

    node = Scripted([Step(Action.WAITING, 2, "for the reveal deadline, 10:00:00 UTC", 1_090)] * 2 + [Step(Action.DONE, 0, "plan complete")])
    node.protocol = SimpleNamespace(chain=SimpleNamespace(now=lambda: 1_000))
    node.run(poll=0)
    assert node.lines == ["round 2: waiting (for the reveal deadline, 10:00:00 UTC): 90 s left", "done (plan complete): finished"]
