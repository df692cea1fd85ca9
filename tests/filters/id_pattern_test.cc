#include "filters/id_pattern.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

namespace viscount {
namespace {

IdPattern compileOrDie(const std::string& source) {
  std::string error;
  auto pattern = IdPattern::compile(source, &error);
  EXPECT_TRUE(pattern) << source << ": " << error;
  return pattern ? *pattern : *IdPattern::compile("", &error);
}

// Shapes the table must take over. Several are chosen to trip a naive class parser: escapes
// that look like the closing bracket, a dash at either end, hex escapes, class escapes, negation.
const std::vector<std::string> kTablePatterns = {
    "^[A-Za-z0-9._:-]{1,128}$",  // context.id_pattern default
    "^[\\x21-\\x7E]{1,256}$",    // context.user_id.pattern default
    "^[0-9a-f-]{36}$",
    "^[A-Za-z0-9._:-]+$",
    "[A-Za-z0-9]*",
    "^[-a-z]{2,}$",
    "^[a-z-]?$",
    "^[\\.\\-_a-z]{0,3}$",
    "^[\\]\\\\]{1,2}$",
    "^[\\w]{1,5}$",
    "^[\\d]+$",
    "^[^,; ]{1,64}$",
    "^[^\\x00-\\x1f]+$",
    "[abc]",
    "^[a-c]{0}$",
    "^[\\x00-\\x7f]{1,10}$",
    "^[\\t a]{1,4}$",
};

// Everything else goes through std::regex.
const std::vector<std::string> kRegexPatterns = {
    "^(abc|def)$",    "^[a-z]+@[a-z]+\\.[a-z]{2,}$",
    "^[[:alpha:]]+$", "^[a-z]{1,3}?$",
    "^[a-z]+$$",      "^(?:[a-z]|-)+$",
    "[a-z]{2}[0-9]",  "",
};

TEST(IdPatternTest, CommonShapesUseTheTable) {
  for (const auto& source : kTablePatterns) {
    EXPECT_TRUE(compileOrDie(source).usesTable()) << source;
  }
  for (const auto& source : kRegexPatterns) {
    EXPECT_FALSE(compileOrDie(source).usesTable()) << source;
  }
}

TEST(IdPatternTest, InvalidPatternsAreReported) {
  for (std::string source : {"^[a-z", "(", "^[z-a]+$", "^[a-z]{3,1}$", "*a", "^(a)\\1$"}) {
    std::string error;
    EXPECT_FALSE(IdPattern::compile(source, &error)) << source;
    EXPECT_NE(error.find("invalid regular expression"), std::string::npos) << source;
  }
}

TEST(IdPatternTest, RepetitionsOver1000AreRefused) {
  // libstdc++ compiles X{n} by copying X n times, in time that for an empty X grows with the
  // square of the copies, nested and stacked repetitions multiplying them; it also reads
  // counts and back-reference numbers into a long without an overflow check.
  for (std::string source :
       {"^[a-z]{1,99999999999999999999}$", "a{12345678901}", "]{0}{29141}", "a{1001}",
        "^[a-z]{2,1001}$", "a{0}{30}{30}{30}", "[\xf8\xff]{0}{192}{24}{4,}", "(?:(?:){100}){100}",
        "((a{10}){10}){11}", "(?:a{0}){10}{101}", "x|(y|(z{2})){501}", "(a{500}){3}", "\\0{1001}",
        "^[A\\][-{dd]\\0{500000000000000000061,126}", "^\\c\\{99999999999999999999}$",
        "^[\\c\\]{1001}$"}) {
    std::string error;
    EXPECT_FALSE(IdPattern::compile(source, &error)) << source;
    EXPECT_NE(error.find("a repetition count over 1000 (the counts of nested repetitions "
                         "multiply)"),
              std::string::npos)
        << source << ": " << error;
  }
  // A long number where std::regex reads none is refused all the same: the check for the
  // overflow does not rely on reading the pattern's structure right.
  std::string crude;
  EXPECT_FALSE(IdPattern::compile("^[,12345678901]$", &crude));
  EXPECT_NE(crude.find("a number of more than 9 digits"), std::string::npos) << crude;
  for (std::string source : {"(a)\\12345678901", "[a]\\2024"}) {
    std::string error;
    EXPECT_FALSE(IdPattern::compile(source, &error)) << source;
    EXPECT_NE(error.find("a back-reference number over 1000"), std::string::npos)
        << source << ": " << error;
  }
  EXPECT_TRUE(compileOrDie("^[a-z]{1,1000}$").usesTable());
  EXPECT_TRUE(compileOrDie("^[a-z]{0001000}$").matches(std::string(1000, 'a')));
  EXPECT_TRUE(compileOrDie("^(?:[a-f0-9]{8}-){3}[a-f0-9]{12}$")
                  .matches("0f8fad5b-d9cb469f-a1657086-7728950e1234"));
  // Up to 1000 copies along any nesting, and repetitions one after another do not multiply.
  for (std::string source : {"]{0}{1000}", "((a{10}){10}){10}", "(a{500}){2}", "a{1000}b{1000}",
                             "(a{500})b{2}", "(a{999}|b{999}){1}", "(a|b){1000}"}) {
    compileOrDie(source);
  }
  // Digits that are characters to match are not numbers to read: after an escaped brace, in a
  // class, after a comma outside braces.
  EXPECT_FALSE(compileOrDie("^[0-9]{1,12}-12345678901$").usesTable());
  EXPECT_TRUE(compileOrDie("^\\{5000}$").matches("{5000}"));
  EXPECT_TRUE(compileOrDie("^[{,2024]+$").matches("{2024,"));
  EXPECT_TRUE(compileOrDie("^a,2024$").matches("a,2024"));
}

TEST(IdPatternTest, DefaultIdPattern) {
  IdPattern p = compileOrDie("^[A-Za-z0-9._:-]{1,128}$");
  EXPECT_TRUE(p.matches("abc-123"));
  EXPECT_TRUE(p.matches("0f8fad5b-d9cb-469f-a165-70867728950e"));
  EXPECT_TRUE(p.matches("a.b_c:d"));
  EXPECT_TRUE(p.matches(std::string(128, 'x')));
  EXPECT_FALSE(p.matches(std::string(129, 'x')));
  EXPECT_FALSE(p.matches(""));
  EXPECT_FALSE(p.matches("a b"));
  EXPECT_FALSE(p.matches("abc\r\n"));
  EXPECT_FALSE(p.matches("abc\n"));
  EXPECT_FALSE(p.matches(std::string("ab\0c", 4)));
  EXPECT_FALSE(p.matches("caf\xc3\xa9"));
  EXPECT_FALSE(p.matches("a/b"));
}

// Inputs an attacker would try, plus the boundaries of the default patterns.
std::vector<std::string> hostileInputs() {
  std::vector<std::string> inputs = {
      "",
      "a",
      "abc\r\n",
      "abc\n",
      "\nabc",
      "abc\r",
      std::string("\0", 1),
      std::string("abc\0", 4),
      std::string("\0abc", 4),
      "a b",
      " abc",
      "abc ",
      "\t",
      "caf\xc3\xa9",
      "\xff\xfe",
      "\x80",
      "\x7f",
      "]",
      "\\",
      "-",
      "^",
      "$",
      std::string(128, 'a'),
      std::string(129, 'a'),
      std::string(256, '!'),
      std::string(257, '!'),
      std::string(10 * 1024, 'a'),
      std::string(10 * 1024, 'a') + "\n",
      std::string(5 * 1024, 'a') + "\r\n" + std::string(5 * 1024, 'a'),
      std::string(10 * 1024, '\xff'),
  };
  for (int b = 0; b < 256; ++b)
    inputs.emplace_back(1, static_cast<char>(b));
  for (int b = 0; b < 256; ++b)
    inputs.push_back("ab" + std::string(1, static_cast<char>(b)));
  return inputs;
}

// Random strings biased toward characters the patterns care about, with every byte possible.
std::vector<std::string> randomInputs(size_t count, unsigned seed) {
  static const std::string kBiased = "aAzZ09._:-!~ \t\r\n\\]^$@,;\x7f\x80\xff";
  std::mt19937 rng(seed);
  std::vector<std::string> inputs;
  inputs.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    size_t length = std::uniform_int_distribution<size_t>(0, i % 10 == 0 ? 300 : 8)(rng);
    std::string s;
    for (size_t j = 0; j < length; ++j) {
      unsigned r = std::uniform_int_distribution<unsigned>(0, 99)(rng);
      if (r < 60) {
        s.push_back(kBiased[r % kBiased.size()]);
      } else if (r < 90) {
        s.push_back(static_cast<char>('a' + r % 26));
      } else {
        s.push_back(static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng)));
      }
    }
    inputs.push_back(std::move(s));
  }
  return inputs;
}

void expectAgreesWithStdRegex(const std::string& source, const std::vector<std::string>& inputs) {
  IdPattern pattern = compileOrDie(source);
  // The default libstdc++ matcher recurses per input character and overflows the stack on long
  // inputs (sooner under sanitizers); past a few KiB the reference is its polynomial mode.
  std::regex reference(source, std::regex::ECMAScript);
  std::regex long_reference(source, std::regex::ECMAScript | std::regex_constants::__polynomial);
  for (const auto& input : inputs) {
    const std::regex& re = input.size() <= 2048 ? reference : long_reference;
    ASSERT_EQ(pattern.matches(input), std::regex_match(input, re))
        << "pattern " << source << " input (" << input.size() << " bytes) \"" << input.substr(0, 40)
        << "\"";
  }
}

TEST(IdPatternTest, TableAgreesWithStdRegexOnHostileInputs) {
  auto inputs = hostileInputs();
  for (const auto& source : kTablePatterns)
    expectAgreesWithStdRegex(source, inputs);
}

TEST(IdPatternTest, TableAgreesWithStdRegexOnRandomInputs) {
  unsigned seed = 1;
  for (const auto& source : kTablePatterns) {
    expectAgreesWithStdRegex(source, randomInputs(20'000, seed++));
  }
}

TEST(IdPatternTest, TableAgreesWithStdRegexOnAllTwoByteStrings) {
  std::vector<std::string> inputs;
  inputs.reserve(256 * 256);
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      inputs.push_back({static_cast<char>(a), static_cast<char>(b)});
    }
  }
  for (const auto& source :
       {"^[A-Za-z0-9._:-]{1,128}$", "^[\\x21-\\x7E]{1,256}$", "^[^,; ]{1,64}$"}) {
    expectAgreesWithStdRegex(source, inputs);
  }
}

TEST(IdPatternTest, RegexFallbackAgreesWithStdRegex) {
  auto inputs = randomInputs(5'000, 99);
  for (auto& s : hostileInputs())
    inputs.push_back(std::move(s));
  inputs.push_back("abc@example.com");
  inputs.push_back("abc-def");
  for (const auto& source : kRegexPatterns)
    expectAgreesWithStdRegex(source, inputs);
}

// libstdc++'s default matcher recurses per character; a long header must not crash a worker.
TEST(IdPatternTest, RegexFallbackSurvivesVeryLongValues) {
  IdPattern p = compileOrDie("^(?:[a-z]|-)+$");
  ASSERT_FALSE(p.usesTable());
  EXPECT_TRUE(p.matches(std::string(1024 * 1024, 'a')));
  EXPECT_FALSE(p.matches(std::string(1024 * 1024, 'a') + "!"));
}

}  // namespace
}  // namespace viscount
