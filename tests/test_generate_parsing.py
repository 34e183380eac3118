import pytest

from guardkit.generate.parsing import ParsedText, parse_generated_texts, parse_list_continuation, parse_verdict


@pytest.mark.parametrize(
    "response",
    [
        '[{"text": "first one", "rationale": "r1"}, {"text": "second one", "rationale": "r2"}]',
        'Sure! Here they are:\n```json\n[{"text": "first one", "rationale": "r1"},\n {"text": "second one", "rationale": "r2"},\n]\n```\nHope this helps.',
        '[{"text": "first one", "rationale": "r1",}, {"text": "second one", "rationale": "r2",},]',
        "[{\u201ctext\u201d: \u201cfirst one\u201d, \u201crationale\u201d: \u201cr1\u201d}, {\u201ctext\u201d: \u201csecond one\u201d, \u201crationale\u201d: \u201cr2\u201d}]",
        "[{'text': 'first one', 'rationale': 'r1'}, {'text': 'second one', 'rationale': 'r2'}]",
        '{"examples": [{"message": "first one", "reason": "r1"}, {"message": "second one", "reason": "r2"}]}',
        'Here is my answer [{"text": "first one", "rationale": "r1"}, {"text": "second one", "rationale": "r2"}] as requested',
    ],
)
def test_json_lists_are_repaired(response):
    assert parse_generated_texts(response) == [ParsedText("first one", "r1"), ParsedText("second one", "r2")]


def test_list_of_strings_and_numbered_list_fallback():
    assert parse_generated_texts('["a text", "another text"]') == [ParsedText("a text"), ParsedText("another text")]
    numbered = "Here are some:\n1. \"first one\"\n2) second one\n- third one\nThat's all."
    assert [item.text for item in parse_generated_texts(numbered)] == ["first one", "second one", "third one"]


@pytest.mark.parametrize("response", ["", "I cannot help with that.", '[{"rationale": "no text"}]', "{ broken"])
def test_unparseable_responses_give_nothing(response):
    assert parse_generated_texts(response) == []


def test_list_continuation_drops_the_cut_off_item_and_stops_at_a_blank_line():
    completion = " How do I feed my cat?\n5. Is tuna good for dogs?\n6. What about chocol"
    assert [item.text for item in parse_list_continuation(completion, 4, truncated=True)] == [
        "How do I feed my cat?",
        "Is tuna good for dogs?",
    ]
    assert len(parse_list_continuation(completion, 4, truncated=False)) == 3
    after_list = " One text\n5. Two text\n\nThe list above shows examples.\n7. not part of it"
    assert [item.text for item in parse_list_continuation(after_list, 4, truncated=True)] == ["One text", "Two text"]
    assert parse_list_continuation("", 4, truncated=True) == []


def test_verdicts():
    assert parse_verdict('```json\n{"label": "unsafe", "rationale": "asks to poison a dog"}\n```') == ("unsafe", "asks to poison a dog")
    assert parse_verdict("{'verdict': 'Safe', 'reason': 'harmless',}") == ("safe", "harmless")
    assert parse_verdict("The text is unsafe.")[0] == "unsafe"
    assert parse_verdict("It could be safe or unsafe.") is None
    assert parse_verdict("no idea") is None
