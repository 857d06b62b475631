use super::*;

#[test]
fn the_built_in_file_reads_whole() {
    let presets = parse(DATA).unwrap();
    for name in ["python", "node", "rust", "go", "ruby", "java", "debian", "alpine", "github", "gitlab", "docker-hub", "ghcr", "huggingface", "anthropic", "openai"] {
        assert!(presets.iter().any(|p| p.name == name), "@{name}");
    }
    assert_eq!(all().len(), presets.len());
    let python = get("@python").unwrap();
    assert!(python.covers("files.pythonhosted.org") && !python.covers("evil.test"));
    assert!(get("github").unwrap().covers("objects.githubusercontent.com"), "a *. entry");
    assert_eq!(get("debian").unwrap().entries[0].ports, vec![80, 443]);
}

#[test]
fn an_unknown_preset_or_a_bad_line_says_what_is_wrong() {
    assert!(expand("@pyhton").unwrap_err().contains("unknown preset \"@pyhton\" (presets: @python @node"));
    for (text, want) in [
        ("a.test https://x\n", "a name before any @NAME"),
        ("@x about\n", "@x holds no name"),
        ("@x about\na.test http://x\n", "one https:// address"),
        ("@x about\na.test:0 https://x\n", "bad port \"0\""),
        ("@x about\n* https://x\n", "never holds *"),
        ("@X about\n", "a preset is @NAME"),
        ("@x\n", "a preset is @NAME"),
    ] {
        assert!(parse(text).unwrap_err().contains(want), "{text:?}: {:?}", parse(text));
    }
}

#[test]
fn describe_prints_names_ports_and_sources() {
    let text = describe(Some("@rust")).unwrap();
    assert!(text.starts_with("@rust  "), "{text}");
    assert!(text.contains("index.crates.io:443") && text.contains("https://doc.rust-lang.org/cargo/"), "{text}");
    assert!(describe(Some("@nope")).unwrap_err().contains("unknown preset"));
    assert_eq!(describe(None).unwrap().matches("\n@").count() + 1, all().len());
}
