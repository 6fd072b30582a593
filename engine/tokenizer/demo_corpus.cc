#include "engine/tokenizer/demo_corpus.h"

#include <string>

namespace muserve::tokenizer_internal {
namespace {

constexpr std::string_view kProse =
    R"(The morning train was late again, so she opened her notebook and began to write.
There is a particular kind of quiet that settles over a station before the first
crowd arrives. The lights hum, the benches are cold, and every sound seems to
travel a little farther than it should. She wrote about the light, about the
smell of coffee from the kiosk, and about the man who swept the platform with
slow and careful strokes, as if the floor were something precious.

When the train finally came, it was nearly empty. She chose a seat by the
window and watched the city wake up: shutters rising, buses pulling away from
their stops, a child in a yellow coat holding her father's hand. It's strange,
she thought, how a place you have seen a thousand times can still surprise you.
We don't notice most of our days; we're too busy living them. But now and then
the world turns a few degrees and everything looks new.

A language model reads text as a sequence of tokens. Each token is a short
piece of a word, a whole word, a number, or a mark of punctuation. The model
predicts the next token, one step at a time, and a server streams those tokens
back to the user as soon as they are ready. Good serving systems batch many
requests together, keep the hardware busy, and never make anyone wait longer
than they must. They measure the time to the first token, the time between
tokens, and the number of requests they can answer every second.

Questions are welcome. What is the capital of France? Paris. How many days are
there in a leap year? There are 366. Which is larger, 3.14 or 2.72? The first
one is larger. Can you summarise this paragraph in one sentence? Of course: the
paragraph asks simple questions and gives short answers.

In the old library, the shelves reached all the way to the ceiling. Readers
climbed wooden ladders to find the books they needed, and the librarian kept a
list of every volume in a large leather ledger. Nobody remembers when the
library was built, but everyone agrees that it has always been the heart of the
town. Children learn to read there; students prepare for their examinations;
old friends meet on Thursday afternoons to argue about history and poetry.

The weather report promised rain in the north and sunshine in the south, with
temperatures between 12 and 24 degrees. Farmers checked the sky anyway. They
have learned, over many years, that the clouds know more than the forecast.

Mountains rise slowly, over millions of years, and wear away just as slowly.
Rivers carve valleys; glaciers polish granite; wind lifts fine dust and carries
it across oceans. Geologists read these changes in layers of rock the way
historians read letters and diaries. Every layer records a season, a flood, an
eruption, or a long and uneventful silence.

Cooking is chemistry you can eat. Heat changes proteins, sugar caramelises,
and onions soften into something sweet and golden. A good recipe explains not
only what to do but why: rest the dough so the gluten relaxes, salt the water
so the pasta tastes of something, and taste everything before you serve it.
Bread needs flour, water, yeast and patience; soup needs vegetables, a little
butter, fresh herbs and time.

The engineer's notebook was full of diagrams. Arrows pointed from queues to
workers, from workers to caches, and from caches back to the clients waiting
for their answers. Under each diagram she had written a single question: what
happens when this fails? Memory fills up, connections drop, disks slow down,
and machines restart without warning. A robust system expects all of this,
recovers gracefully, and reports clearly what went wrong.

Music travels through air as pressure waves. Our ears turn those waves into
signals, and our brains turn the signals into melody, rhythm and harmony.
Musicians practise scales for hours so their fingers remember the patterns,
leaving their minds free to listen. An orchestra tunes to a single note before
every concert, and the conductor waits for complete silence before raising the
baton.

Birds migrate thousands of kilometres each spring and autumn. Scientists attach
tiny trackers to swallows, geese and cranes, then follow their journeys on
maps: across deserts, over seas, along coastlines and mountain ranges. Some
birds fly by day and rest at night; others travel in darkness and navigate by
the stars and by the magnetic field of the earth.
)";

constexpr std::string_view kCode = R"(def fibonacci(n: int) -> list[int]:
    """Returns the first n Fibonacci numbers."""
    values = [0, 1]
    while len(values) < n:
        values.append(values[-1] + values[-2])
    return values[:n]


class Counter:
    def __init__(self):
        self.counts = {}

    def add(self, key, amount=1):
        self.counts[key] = self.counts.get(key, 0) + amount
        return self.counts[key]


if __name__ == "__main__":
    for i, value in enumerate(fibonacci(10)):
        print(f"{i}: {value}")

#include <iostream>
#include <string>
#include <vector>

// Returns the sum of all elements of `values`.
int Sum(const std::vector<int>& values) {
  int total = 0;
  for (const int value : values) {
    total += value;
  }
  return total;
}

int main(int argc, char** argv) {
  std::vector<int> values = {1, 2, 3, 4, 5};
  std::cout << "sum = " << Sum(values) << std::endl;
  if (argc > 1) {
    std::string name = argv[1];
    std::cout << "hello, " << name << "!" << std::endl;
  }
  return 0;
}

{"model": "demo", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64}
SELECT name, count(*) FROM requests WHERE status = 'ok' GROUP BY name ORDER BY 2 DESC;
)";

}  // namespace

std::string_view DemoCorpus() {
  static const std::string* const corpus =
      new std::string(std::string(kProse) + std::string(kCode));
  return *corpus;
}

}  // namespace muserve::tokenizer_internal
