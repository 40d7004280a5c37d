//! The built-in word list for generated join codes.
//!
//! Exactly 256 short (3 to 7 letters), distinct, lowercase English nouns that are easy to type and read aloud.
//! No word is a prefix of another. Each word chosen uniformly from the list carries exactly 8 bits of secret,
//! so a word's index in [`WORDS`] is one byte.

/// The 256 words, sorted. A word's index is the byte it encodes.
pub const WORDS: [&str; 256] = [
    "acorn", "actor", "agent", "alarm", "album", "alert", "alley", "amber", "angel", "apple",
    "apron", "arena", "arrow", "atlas", "audio", "award", "bacon", "badge", "bagel", "baker",
    "bamboo", "banjo", "barn", "basil", "basket", "beach", "beard", "berry", "bike", "bird",
    "blade", "blank", "blaze", "bloom", "board", "boat", "bonus", "boots", "brain", "brave",
    "bread", "brick", "bride", "brook", "brush", "bucket", "buddy", "cabin", "cable", "cactus",
    "camel", "camp", "candy", "canoe", "canvas", "cargo", "carpet", "carrot", "castle", "cedar",
    "chalk", "cheek", "cherry", "chess", "chief", "cider", "circus", "clay", "cliff", "clock",
    "cloud", "clover", "coach", "cobra", "cocoa", "coffee", "comet", "coral", "cotton", "couch",
    "crab", "crane", "crayon", "cream", "crown", "cube", "cycle", "daisy", "dance", "delta",
    "denim", "desert", "diary", "diver", "donkey", "dragon", "drum", "duck", "eagle", "earth",
    "echo", "elbow", "ember", "engine", "fabric", "falcon", "farm", "feast", "fence", "ferry",
    "fiber", "field", "flame", "flute", "focus", "forest", "fossil", "fox", "frog", "frost",
    "fruit", "gadget", "galaxy", "garden", "garlic", "gecko", "ghost", "giant", "ginger", "glove",
    "goat", "gold", "grape", "gravel", "guitar", "hammer", "harbor", "hazel", "helmet", "hero",
    "honey", "hotel", "igloo", "index", "ink", "island", "ivory", "jacket", "jaguar", "jazz",
    "jelly", "jewel", "jungle", "kayak", "kettle", "kiwi", "koala", "ladder", "lake", "lamp",
    "laser", "lemon", "lens", "lily", "lion", "lizard", "llama", "lotus", "magnet", "mango",
    "maple", "marble", "meadow", "melon", "metal", "mint", "mirror", "monkey", "moose", "motor",
    "mouse", "muffin", "museum", "nectar", "needle", "noodle", "nugget", "oasis", "ocean", "olive",
    "onion", "orbit", "otter", "oven", "owl", "paddle", "panda", "paper", "parrot", "peach",
    "pepper", "piano", "pickle", "pilot", "pizza", "planet", "plum", "pocket", "poem", "pony",
    "potato", "puzzle", "quartz", "quilt", "rabbit", "radar", "radio", "raven", "revenge", "rhino",
    "ribbon", "river", "robot", "rocket", "ruby", "saddle", "salad", "salmon", "sandal", "scarf",
    "shadow", "shark", "shell", "silver", "sketch", "sock", "spider", "spoon", "squid", "stone",
    "sugar", "summit", "sunset", "tiger", "toast", "tomato", "tulip", "turtle", "velvet", "violin",
    "waffle", "walnut", "wizard", "yacht", "zebra", "zipper",
];

/// The index of `word` in [`WORDS`] if it is a list word (`word` must already be lowercase).
pub fn index_of(word: &str) -> Option<u8> {
    WORDS
        .binary_search(&word)
        .ok()
        .and_then(|i| u8::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn there_are_256_distinct_sorted_short_lowercase_words() {
        let set: HashSet<&str> = WORDS.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert!(
            WORDS.windows(2).all(|w| w[0] < w[1]),
            "sorted, for binary search"
        );
        for w in WORDS {
            assert!((3..=7).contains(&w.len()), "{w}");
            assert!(w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
        }
    }

    #[test]
    fn no_word_is_a_prefix_of_another() {
        for a in WORDS {
            for b in WORDS {
                assert!(a == b || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
    }

    #[test]
    fn index_of_round_trips() {
        for (i, w) in WORDS.iter().enumerate() {
            assert_eq!(index_of(w), Some(i as u8));
        }
        assert_eq!(index_of("horse"), None);
        assert_eq!(index_of("Guitar"), None);
    }
}
