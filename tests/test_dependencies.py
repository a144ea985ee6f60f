"""Dependencies inferred by execution: data bindings and state effects."""

from __future__ import annotations

from pipeline.dependencies import data_bindings, infer_dependencies
from pipeline.models import Call, RejectionCode, Task
from pipeline.validate.chain import validate_task


def test_value_copied_from_an_output_binds_to_its_producer() -> None:
    calls = [
        Call(id="s1", tool="maths.add", arguments={"a": 3.5, "b": 4.25}),
        Call(id="s2", tool="maths.mean", arguments={"numbers": [10, 12]}),
        Call(id="s3", tool="maths.multiply", arguments={"a": 7.75, "b": 2}),
        Call(id="s4", tool="maths.max_value", arguments={"numbers": [7.75, 11, 1]}),
    ]
    inferred = infer_dependencies(["maths"], {}, calls, "Add 3.5 and 4.25, double it ...")
    assert [c.depends_on for c in inferred] == [[], [], ["s1"], ["s1", "s2"]]
    assert inferred[2].bindings == {"a": "s1.result"}
    assert inferred[3].bindings == {"numbers.0": "s1.result", "numbers.1": "s2.result"}


def test_values_in_the_question_or_trivial_values_do_not_bind() -> None:
    calls = [
        Call(id="s1", tool="maths.add", arguments={"a": 1, "b": 1}),
        Call(id="s2", tool="maths.multiply", arguments={"a": 2, "b": 1}),
        Call(id="s3", tool="maths.add", arguments={"a": 2.0, "b": 5}),
    ]
    outputs = [{"result": 2.0}, {"result": 2.0}, {"result": 7.0}]
    # 2 is in the question, so s2 and s3 do not need s1's output
    assert data_bindings(calls, outputs, "add 1 and 1, then times 2") == [{}, {}, {}]
    assert data_bindings(calls, outputs, "add one and one") == [
        {},
        {"a": "s1.result"},
        {"a": "s1.result"},
    ]


def test_a_number_is_mentioned_only_as_a_whole_number() -> None:
    calls = [
        Call(id="s1", tool="maths.add", arguments={"a": 2.5, "b": 2.5}),
        Call(id="s2", tool="maths.multiply", arguments={"a": 5, "b": 3}),
    ]
    outputs = [{"result": 5.0}, {"result": 15.0}]
    # "15" and "5.5" do not state 5: the 5 comes from s1
    assert data_bindings(calls, outputs, "add 2.5 and 2.5 (not 15, not 5.5), times 3") == [
        {},
        {"a": "s1.result"},
    ]


def test_a_rounded_value_depends_on_its_producer_without_a_binding() -> None:
    calls = [
        Call(id="s1", tool="vehicle.liter_to_gallon", arguments={"liter": 38}),
        Call(id="s2", tool="vehicle.fillFuelTank", arguments={"fuelAmount": 10.04}),
    ]
    inferred = infer_dependencies(["vehicle"], {}, calls, "Convert 38 liters, then fill it.")
    assert inferred[1].depends_on == ["s1"]
    assert inferred[1].bindings == {}


def test_a_conditioned_step_depends_on_the_read_it_tests() -> None:
    calls = [
        Call(id="s1", tool="vehicle.displayCarStatus", arguments={"option": "fuel"}),
        Call(id="s2", tool="vehicle.check_tire_pressure", arguments={}),
        Call(id="s3", tool="vehicle.find_nearest_tire_shop", arguments={}),
    ]
    question = (
        "Show me the fuel level. Check the tyre pressure; should any tyre be under 35 PSI, "
        "find the nearest tire shop."
    )
    inferred = infer_dependencies(["vehicle"], {}, calls, question)
    assert [call.depends_on for call in inferred] == [[], [], ["s2"]]
    unconditional = infer_dependencies(["vehicle"], {}, calls, question.replace("should", "and"))
    assert unconditional[2].depends_on == []


def test_a_dependency_hidden_by_a_coincidence_of_the_state_is_found() -> None:
    # the parent folder holds nothing but Meadow: du reports the same size from either folder
    config = {
        "filesystem": {
            "root": {
                "workspace": {
                    "type": "directory",
                    "contents": {
                        "Meadow": {
                            "type": "directory",
                            "contents": {"a.txt": {"type": "file", "content": "hello"}},
                        }
                    },
                }
            }
        }
    }
    calls = [
        Call(id="s1", tool="filesystem.cd", arguments={"folder": "Meadow"}),
        Call(id="s2", tool="filesystem.du", arguments={"human_readable": False}),
    ]
    question = "Go into 'Meadow' and tell me how much space it takes."
    inferred = infer_dependencies(["filesystem"], config, calls, question)
    assert inferred[1].depends_on == ["s1"]
    task = Task(
        id="pending",
        category="filesystem",
        envs=["filesystem"],
        question=question,
        initial_config=config,
        calls=[calls[0], calls[1]],
    ).with_content_id()
    verdict = validate_task(task)
    assert verdict.rejection is not None
    assert verdict.rejection.code is RejectionCode.DEPENDENCY_UNDECLARED
    assert "extra content" in verdict.rejection.message
    assert validate_task(task.model_copy(update={"calls": inferred})).accepted


def test_every_conditioned_step_depends_on_the_read_of_an_earlier_sentence() -> None:
    calls = [
        Call(id="s1", tool="vehicle.check_tire_pressure", arguments={}),
        Call(id="s2", tool="vehicle.find_nearest_tire_shop", arguments={}),
        Call(
            id="s3",
            tool="vehicle.set_navigation",
            arguments={"destination": "456 Oakwood Avenue, Rivermist, 83214"},
        ),
    ]
    question = (
        "Please verify the tire pressures. Should any tire fall below 40 PSI, pinpoint the "
        "nearest tire shop and set navigation to it."
    )
    inferred = infer_dependencies(["vehicle"], {}, calls, question)
    # the lookup is tested against the check; navigation follows the lookup (and so the check)
    assert [call.depends_on for call in inferred] == [[], ["s1"], ["s2"]]


def test_the_tested_read_is_the_one_named_before_the_condition() -> None:
    from pipeline.conditions import control_edges

    calls = [
        Call(id="s1", tool="vehicle.liter_to_gallon", arguments={"liter": 20}),
        Call(id="s2", tool="vehicle.fillFuelTank", arguments={"fuelAmount": 5.28344}),
        Call(id="s3", tool="vehicle.check_tire_pressure", arguments={}),
        Call(id="s4", tool="vehicle.find_nearest_tire_shop", arguments={}),
    ]
    same_sentence = (
        "Convert 20 liters to gallons and add that much fuel. Check my tyre pressure, and "
        "should any tyre be under 35 PSI, find the nearest tyre shop."
    )
    assert control_edges(same_sentence, calls) == [(2, 3)]  # not the conversion of sentence 1
    login = [
        Call(id="s1", tool="messaging.message_login", arguments={"user_id": "USR008"}),
        Call(id="s2", tool="messaging.message_get_login_status", arguments={}),
        Call(id="s3", tool="messaging.send_message", arguments={"receiver_id": "USR005"}),
    ]
    question = "Log in as USR008, check that I'm actually logged in, and then send USR005 a note."
    assert control_edges(question, login) == [(1, 2)]
    assert control_edges(question.replace("check that", "tell me whether"), login) == []


def test_a_value_chosen_from_quoted_alternatives_depends_on_the_read_that_decides_it() -> None:
    from pipeline.conditions import control_edges

    calls = [
        Call(id="s1", tool="vehicle.check_tire_pressure", arguments={}),
        Call(id="s2", tool="posting.post_tweet", arguments={"content": "not healthy"}),
    ]
    question = (
        "Check my tire pressure and share its status (with the message 'healthy' or 'not healthy')."
    )
    assert control_edges(question, calls) == [(0, 1)]
    assert control_edges(question.replace(" or 'not healthy'", ""), calls) == []


def test_a_whole_returned_list_binds_as_one() -> None:
    calls = [
        Call(id="s1", tool="maths.add", arguments={"a": 2, "b": 3}),
        Call(id="s2", tool="maths.max_value", arguments={"numbers": [4, 9, 7]}),
        Call(id="s3", tool="maths.mean", arguments={"numbers": [4, 9, 7]}),
    ]
    outputs = [{"result": 5.0}, {"result": 9}, {"result": 6.67}]
    listing = {"items": [4, 9, 7]}
    # a list passed on whole binds to the list, even though one item (4) is in the question
    got = data_bindings(
        [Call(id="s0", tool="data_generation.random_integers", arguments={}), *calls[1:]],
        [listing, *outputs[1:]],
        "draw some integers (4 or more), take their maximum and their mean",
    )
    assert got[1] == {"numbers": "s0.items"} and got[2] == {"numbers": "s0.items"}
    # every item stated by the question: no data flow
    stated = data_bindings(
        [Call(id="s0", tool="data_generation.random_integers", arguments={}), *calls[1:]],
        [listing, *outputs[1:]],
        "take the maximum of 4, 9 and 7, and their mean",
    )
    assert stated[1] == {} and stated[2] == {}


def test_a_returned_list_with_trivial_items_still_binds_as_one() -> None:
    fibonacci = [0, 1, 1, 2, 3, 5, 8, 13]
    calls = [
        Call(id="s1", tool="data_generation.fibonacci_sequence", arguments={"length": 8}),
        Call(id="s2", tool="data_generation.count_values", arguments={"items": fibonacci}),
    ]
    outputs = [{"values": fibonacci}, {"counts": {}}]
    question = "Generate 8 Fibonacci values, then count how often each occurs."
    # 0 and 1 alone bind to nothing, but the list they open is the one returned
    assert data_bindings(calls, outputs, question)[1] == {"items": "s1.values"}
    # a list of trivial values only is too weak to be a data flow
    trivial = [Call(id="s2", tool="data_generation.count_values", arguments={"items": [0, 1]})]
    assert data_bindings([calls[0], *trivial], [{"values": [0, 1]}, {}], question)[1] == {}


def test_whether_questions_and_politeness_are_no_conditions() -> None:
    from pipeline.conditions import CONDITION, untested_conditions

    for said in (
        "Would you be able to verify if my tire pressure is in check?",
        "Tell me if it is raining.",
        "If that helps, my user id is 'USR005'.",
        "Post it if you like.",
    ):
        assert CONDITION.search(said) is None, said
    shop = [Call(id="s1", tool="vehicle.find_nearest_tire_shop", arguments={})]
    assert untested_conditions("If any tyre is under 35 PSI, find the nearest tire shop.", shop)
    assert not untested_conditions("Find the nearest tire shop.", shop)
    # a check answered by acting: locking the doors is no look at whether they are locked
    lock = [
        Call(id="s1", tool="vehicle.lockDoors", arguments={"unlock": False, "door": ["driver"]}),
        Call(id="s2", tool="vehicle.pressBrakePedal", arguments={"pedalPosition": 1.0}),
    ]
    assert untested_conditions("Verify that every car door is locked and press the brake.", lock)
    looked = [Call(id="s0", tool="vehicle.displayCarStatus", arguments={"option": "doors"}), *lock]
    assert not untested_conditions("Verify that every car door is locked, then lock them.", looked)


def test_a_call_named_as_much_here_as_in_the_next_sentence_moves_forward() -> None:
    from pipeline.conditions import control_edges

    calls = [
        Call(id="s1", tool="vehicle.check_tire_pressure", arguments={}),
        Call(id="s2", tool="vehicle.find_nearest_tire_shop", arguments={}),
    ]
    question = (
        "Please assess my tire pressures. If any tire registers under 40 PSI, guide me to the "
        "closest tire service facility."
    )
    assert control_edges(question, calls) == [(0, 1)]


def test_numbers_inside_returned_text_are_no_operands() -> None:
    from pipeline.validate.grounding import Sources

    sources = Sources("Fill the tank up entirely.", {"car_info": "AudioVolume: 15; Seats: 5"})
    sources.add_numbers([50.0])  # the documented capacity
    assert sources.grounds(15)  # stated as written in a result
    assert not sources.grounds(35.0)  # but 50 - 15 is no fuel level
    with_level = Sources("Fill the tank up entirely.", {"fuelLevel": 15.0})
    with_level.add_numbers([50.0])
    assert with_level.grounds(35.0)  # the capacity minus a reported level


def test_order_words_make_edges_that_inference_adds_and_validation_requires() -> None:
    from pipeline.conditions import order_edges

    calls = [
        Call(id="s1", tool="vehicle.activateParkingBrake", arguments={"mode": "engage"}),
        Call(id="s2", tool="vehicle.check_tire_pressure", arguments={}),
    ]
    for question in (
        "Engage the parking brake before you check my tyre pressure.",
        "Before checking my tyre pressure, engage the parking brake.",
        "Check my tyre pressure after you engage the parking brake.",
        "Check my tyre pressure, making sure the parking brake is engaged.",
    ):
        assert order_edges(question, calls) == {(0, 1)}, question
    # order words about the previous sentence, or naming no call on one side, order nothing
    assert not order_edges("Engage the parking brake. After that, check my tyre pressure.", calls)
    assert not order_edges("Check my tyre pressure before noon.", calls)
    question = "Engage the parking brake before you check my tyre pressure."
    inferred = infer_dependencies(["vehicle"], {}, calls, question)
    assert inferred[1].depends_on == ["s1"]
    task = Task(
        id="pending", category="vehicle", envs=["vehicle"], question=question,
        initial_config={}, calls=inferred,
    ).with_content_id()  # fmt: skip
    assert validate_task(task).accepted


_TICKETS = {"tickets": {"ticket_queue": [], "ticket_counter": 58, "current_user": "bmartin"}}


def _two_tickets(question: str, extra: list[Call] | None = None) -> list[Call]:
    calls = [
        Call(id="s1", tool="tickets.create_ticket", arguments={"title": "Laptop battery swelling"}),
        Call(id="s2", tool="tickets.create_ticket", arguments={"title": "Replace mouse"}),
        *(extra or []),
    ]
    return infer_dependencies(["tickets"], _TICKETS, calls, question)


def test_independent_creations_are_not_ordered_by_the_ids_they_draw() -> None:
    # either order gives each ticket the other's id; the question asks for two tickets only
    question = "Open a ticket titled 'Laptop battery swelling' and one titled 'Replace mouse'."
    calls = _two_tickets(question)
    assert [c.depends_on for c in calls] == [[], []]
    task = Task(
        id="pending", category="tickets", envs=["tickets"], question=question,
        initial_config=_TICKETS, calls=calls,
    ).with_content_id()  # fmt: skip
    verdict = validate_task(task)
    assert verdict.accepted, verdict.rejection
    # a later step that takes the second ticket's id depends on that creation alone
    close = Call(
        id="s3", tool="tickets.close_ticket", arguments={"ticket_id": 59},
    )  # fmt: skip
    question += " Then close the ticket 'Replace mouse' got."
    calls = _two_tickets(question, [close])
    assert calls[1].depends_on == [] and calls[2].depends_on == ["s2"]
    assert calls[2].bindings == {"ticket_id": "s2.id"}


def test_drawn_ids_renamed_by_the_call_that_drew_them() -> None:
    from pipeline.drawn_ids import rename, renaming

    tool = "tickets.create_ticket"
    mapping = renaming([(tool, {"id": 59, "title": "A"}, {"id": 58, "title": "A"}),
                        (tool, {"id": 58, "title": "B"}, {"id": 59, "title": "B"})])  # fmt: skip
    assert mapping is not None
    state = {"queue": {"58": {"id": 58, "title": "B"}, "59": {"id": 59, "title": "A"}}}
    assert rename(state, mapping) == {
        "queue": {"59": {"id": 59, "title": "B"}, "58": {"id": 58, "title": "A"}}
    }
    # not one-to-one: two calls' ids onto one
    assert renaming([(tool, {"id": 1}, {"id": 5}), (tool, {"id": 2}, {"id": 5})]) is None
    # a field that is no drawn id is never renamed
    assert (
        renaming([("tickets.create_ticket", {"id": 1, "priority": 2}, {"id": 1, "priority": 3})])
        == {}
    )


def test_a_read_after_cd_depends_on_it_even_when_the_copy_reads_the_same() -> None:
    files = {
        "filesystem": {
            "root": {
                "home": {
                    "type": "directory",
                    "contents": {
                        "cedar.txt": {"type": "file", "content": "b\na"},
                        "Tundra2023": {"type": "directory", "contents": {}},
                    },
                }
            },
            "cwd": [],
        }
    }
    calls = [
        Call(
            id="s1",
            tool="filesystem.cp",
            arguments={"source": "cedar.txt", "destination": "Tundra2023"},
        ),
        Call(id="s2", tool="filesystem.cd", arguments={"folder": "Tundra2023"}),
        Call(id="s3", tool="filesystem.sort", arguments={"file_name": "cedar.txt"}),
    ]
    question = (
        "Copy 'cedar.txt' into 'Tundra2023', go into 'Tundra2023' and sort 'cedar.txt' there."
    )
    inferred = infer_dependencies(["filesystem"], files, calls, question)
    # the copy inside Tundra2023 sorts like the original, but only the cd makes it that copy
    assert "s2" in inferred[2].depends_on
    stale = [*inferred[:2], inferred[2].model_copy(update={"depends_on": ["s1"]})]
    task = Task(
        id="pending", category="filesystem", envs=["filesystem"], question=question,
        initial_config=files, calls=stale,
    ).with_content_id()  # fmt: skip
    rejection = validate_task(task).rejection
    assert rejection is not None and rejection.code is RejectionCode.DEPENDENCY_UNDECLARED


def test_a_call_named_on_both_sides_of_before_is_not_ordered() -> None:
    from pipeline.conditions import order_edges

    calls = [
        Call(
            id="s1", tool="vehicle.get_zipcode_based_on_city", arguments={"city": "San Francisco"}
        ),
        Call(id="s2", tool="vehicle.get_zipcode_based_on_city", arguments={"city": "Stonebrook"}),
    ]
    question = (
        "Before I set off for Stonebrook, I need the road distance between San Francisco and "
        "Stonebrook."
    )
    assert order_edges(question, calls) == set()


def test_the_read_a_condition_clause_names_is_the_one_it_tests() -> None:
    from pipeline.conditions import control_edges

    calls = [
        Call(id="s1", tool="vehicle.displayCarStatus", arguments={"option": "fuel"}),
        Call(id="s2", tool="vehicle.check_tire_pressure", arguments={}),
        Call(id="s3", tool="vehicle.find_nearest_tire_shop", arguments={}),
    ]
    question = (
        "How much fuel do I have? Then verify the tire pressure. Should I notice that my tire "
        "pressure falls below 40 psi, point me to the nearest tire shop."
    )
    # the pressure check, not the fuel read of an earlier sentence
    assert control_edges(question, calls) == [(1, 2)]


def test_every_edge_inference_draws_is_one_validation_requires() -> None:
    """Inference and validation read the same relations (``Replays``): over the seeds, the
    inferred dependencies pass validation, and leaving out any inferred edge that no other edge
    implies (with the bindings it carries) is rejected as a missing dependency."""
    from pipeline.dependencies import ancestor_sets, declared_parents
    from pipeline.seeds import load_seeds

    missing = {RejectionCode.DEPENDENCY_UNDECLARED, RejectionCode.DEPENDENCY_CONDITION_UNLINKED}
    dropped = 0
    for seed in load_seeds():
        calls = infer_dependencies(seed.envs, seed.initial_config, seed.calls, seed.question)
        task = seed.model_copy(update={"calls": calls})
        assert validate_task(task).accepted, seed.id
        for j, call in enumerate(calls):
            for parent in call.depends_on:
                edited = list(calls)
                edited[j] = call.model_copy(
                    update={
                        "depends_on": [p for p in call.depends_on if p != parent],
                        "bindings": {
                            slot: source
                            for slot, source in call.bindings.items()
                            if source.split(".", 1)[0] != parent
                        },
                    }
                )
                i = [c.id for c in calls].index(parent)
                if i in ancestor_sets(declared_parents(edited))[j]:
                    continue  # still ordered through another edge (a producer stays direct)
                verdict = validate_task(task.model_copy(update={"calls": edited}))
                assert verdict.rejection is not None, (seed.id, call.id, parent)
                assert verdict.rejection.code in missing, (seed.id, call.id, parent)
                dropped += 1
    assert dropped > 100  # the seeds have many edges that matter


def test_independent_bookings_stay_unordered_under_a_history_keyed_by_their_ids() -> None:
    """Blind reads v13 and llm35 failed "book the outbound and the return flight, then show me
    my booking history" for ordering the two bookings: swapped, they swap ids, and the history
    (keyed by booking id) holds each entry under the other id, which the renaming of drawn ids
    did not follow. The history needs both bookings; they need nothing of each other."""
    from pipeline.seeds import load_seeds

    seed = next(s for s in load_seeds() if s.id == "d433a29da3e6d58c")
    calls = [c.model_copy(update={"depends_on": [], "bindings": {}}) for c in seed.calls]
    inferred = infer_dependencies(seed.envs, seed.initial_config, calls, seed.question)
    assert [c.depends_on for c in inferred] == [[], [], ["s1", "s2"]]
    assert validate_task(seed).accepted
    ordered = [
        c.model_copy(update={"depends_on": ["s1"]}) if c.id == "s2" else c for c in seed.calls
    ]
    rejection = validate_task(seed.model_copy(update={"calls": ordered})).rejection
    assert rejection is not None and rejection.code is RejectionCode.DEPENDENCY_SPURIOUS
