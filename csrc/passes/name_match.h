#pragma once

#include <string>
#include <vector>

namespace qext::passes {

// Shell-style wildcard match: '*' any run of characters, '?' one character.
bool glob_match(const std::string& pattern, const std::string& text);

// The first pattern matching text, or nullptr.
const std::string* first_match(const std::vector<std::string>& patterns, const std::string& text);

}  // namespace qext::passes
