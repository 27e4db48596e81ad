"""binding.py: @name -> @ImageN/@ElementN by declaration order, raw refs, @@, library bindings."""

from __future__ import annotations

from helpers import codes, errors, locate, only, run, where, write


def img(name, n=None):
    return f'image {name} = "https://e.com/{n or name}.png"\n'


def el(name):
    return f'element {name} {{\n  front "https://e.com/{name}.png"\n}}\n'


def test_numbering_by_declaration_order_per_kind(tmp_path):
    text = img("a") + el("h") + img("b") + el("v") + 'shot s 5s "@v @b @h @a"\n'
    body = run(tmp_path, text).request.body
    assert body["prompt"] == "@Element2 @Image2 @Element1 @Image1"
    assert body["input_image"] == ["https://e.com/a.png", "https://e.com/b.png"]
    assert [e["frontal_image_url"] for e in body["elements"]] == ["https://e.com/h.png", "https://e.com/v.png"]


def test_reordering_bindings_keeps_prompts_consistent(tmp_path):
    first = run(tmp_path, img("cafe") + img("palette") + 'shot s 5s "@cafe with @palette"\n').request.body
    second = run(tmp_path, img("palette") + img("cafe") + 'shot s 5s "@cafe with @palette"\n').request.body
    for body in (first, second):
        refs = body["prompt"].split(" with ")
        cafe_index = int(refs[0].removeprefix("@Image")) - 1
        palette_index = int(refs[1].removeprefix("@Image")) - 1
        assert body["input_image"][cafe_index] == "https://e.com/cafe.png"
        assert body["input_image"][palette_index] == "https://e.com/palette.png"


def test_raw_refs_in_range(tmp_path):
    text = img("a") + img("b") + el("h") + 'shot s 5s "@Image2 then @Element1 and @a"\n'
    result = run(tmp_path, text)
    assert codes(result) == []
    assert result.request.body["prompt"] == "@Image2 then @Element1 and @Image1"


def test_raw_refs_out_of_range(tmp_path):
    text = img("a") + 'shot s 5s "@a @Image2 @Element1"\n'
    result = run(tmp_path, text)
    found = [d for d in result.diagnostics if d.code == "KVS-ref-range"]
    assert [where(d) for d in found] == [locate(text, "@Image2"), locate(text, "@Element1")]
    assert "binds 1 image" in found[0].message
    assert found[1].help == "declare an `element` first"


def test_double_at_is_a_literal_at(tmp_path):
    text = img("cafe") + 'shot s 5s "mail us @@cafe at @cafe"\n'
    result = run(tmp_path, text)
    assert codes(result) == []
    assert result.request.body["prompt"] == "mail us @cafe at @Image1"


def test_prompt_parts_cut_the_prompt_as_sent_at_its_mentions(tmp_path):
    """`parts` (what the storyboard shows under the author's names) join to the prompt as
    sent, each mention's part being what it became."""
    text = img("cafe") + el("hero") + 'shot s 5s "mail @@cafe: @hero at @cafe, @Image1, @Image9, @nope!"\n'
    [shot] = run(tmp_path, text).bound.shots
    assert "".join(p.text for p in shot.parts) == shot.prompt
    assert [(p.text, p.mention.written if p.mention else None) for p in shot.parts] == [
        ("mail @cafe: ", None),
        ("@Element1", "@hero"),
        (" at ", None),
        ("@Image1", "@cafe"),
        (", ", None),
        ("@Image1", "@Image1"),
        (", ", None),
        ("@Image9", "@Image9"),
        (", ", None),
        ("@nope", "@nope"),
        ("!", None),
    ]
    assert [p.mention.binding.name if p.mention.binding else None for p in shot.parts if p.mention] == [
        "hero",
        "cafe",
        "cafe",
        None,
        None,
    ]


def test_at_inside_a_word_is_not_a_mention(tmp_path):
    result = run(tmp_path, 'shot s 5s "write to hello@cafe.com"\n')
    assert codes(result) == []
    assert result.request.body["prompt"] == "write to hello@cafe.com"


def test_unbound_name_with_did_you_mean(tmp_path):
    text = img("cafe") + 'shot s 5s """\n  Line one @cafe\n  then @cfe here\n"""\n'
    diagnostic = only(run(tmp_path, text), "KVS-name-unbound")
    assert where(diagnostic) == locate(text, "@cfe")
    assert diagnostic.help == "did you mean `@cafe`?"


def test_unbound_name_after_template_expansion_is_located(tmp_path):
    text = 'let x = "long expanded value"\nshot s 5s "{{ x }} @ghost"\n'
    diagnostic = only(run(tmp_path, text), "KVS-name-unbound")
    assert where(diagnostic) == locate(text, "@ghost")


def test_mentions_produced_by_templates_are_bound(tmp_path):
    text = 'let who = "@cafe"\n' + img("cafe") + 'shot s 5s "{{ who }} at dawn"\n'
    result = run(tmp_path, text)
    assert codes(result) == []
    assert result.request.body["prompt"] == "@Image1 at dawn"


def test_duplicate_name(tmp_path):
    text = img("cafe", "a") + el("cafe") + 'shot s 5s "@cafe"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-name-duplicate")
    assert where(diagnostic) == locate(text, "cafe", 1)  # the element's name, line 2
    assert diagnostic.related[0].span.start_position == (1, 7)


def test_reserved_name(tmp_path):
    text = 'image Image1 = "https://e.com/a.png"\nshot s 5s "@Image1"\n'
    diagnostic = only(run(tmp_path, text), "KVS-name-reserved")
    assert where(diagnostic) == locate(text, "Image1")


def test_library_bindings_only_when_mentioned(tmp_path):
    write(tmp_path, img("one") + img("two") + el("hero") + el("villain") + img("three"), "lib/many.kvs")
    result = run(tmp_path, 'use "lib/many.kvs"\nshot s 5s "@three with @villain"\n')
    assert codes(result) == []  # the unmentioned library bindings are neither sent nor warned about
    body = result.request.body
    assert body["prompt"] == "@Image1 with @Element1"
    assert body["input_image"] == ["https://e.com/three.png"]
    assert body["elements"] == [{"frontal_image_url": "https://e.com/villain.png"}]


def test_library_bindings_numbered_at_the_use(tmp_path):
    write(tmp_path, img("lib_a") + img("lib_b"), "lib.kvs")
    text = img("local") + 'use "lib.kvs"\n' + img("after") + 'shot s 5s "@after @lib_b @local"\n'
    body = run(tmp_path, text).request.body
    assert body["input_image"] == ["https://e.com/local.png", "https://e.com/lib_b.png", "https://e.com/after.png"]
    assert body["prompt"] == "@Image3 @Image2 @Image1"


def test_library_bindings_do_not_count_toward_the_limit(tmp_path):
    write(tmp_path, "".join(img(f"i{n}") for n in range(8)), "lib.kvs")
    result = run(tmp_path, 'use "lib.kvs"\nshot s 5s "@i1 @i7"\n')
    assert errors(result) == []
    assert len(result.request.body["input_image"]) == 2


def test_local_bindings_are_sent_even_when_unmentioned(tmp_path):
    result = run(tmp_path, img("cafe") + 'shot s 5s "nothing"\n')
    assert result.request.body["input_image"] == ["https://e.com/cafe.png"]
    assert "KVS-binding-unused" in codes(result)


def test_check_of_a_library_alone(tmp_path):
    result = run(tmp_path, img("a") + el("h"), library_ok=True)
    assert codes(result) == []


def test_at_name_in_the_negative_prompt_is_a_warning_at_the_name(tmp_path):
    text = 'image hero = "https://x.example/h.png"\nnegative "blur, @hero, @@, a@b.c"\nshot a 5s "@hero"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-negative-reference")
    assert diagnostic.severity == "warning" and diagnostic.span.text == "@hero"
    assert "`@Image1`" in (diagnostic.help or "")
    assert result.request.body["negative_prompt"] == "blur, @hero, @@, a@b.c"  # sent as written


def test_no_negative_reference_warning_without_at_names(tmp_path):
    result = run(tmp_path, 'negative "blur, a@b.c, @@"\nshot a 5s "x"\n')
    assert "KVS-negative-reference" not in codes(result)
