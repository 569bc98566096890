"""A 24-document inline corpus with distinct titles and train queries, for generative retrieval tests."""

from __future__ import annotations

TOPICS = [
    ("Goldfish", "Goldfish grow as large as their tank allows. They need clean water and a filter."),
    ("Bluetooth", "Bluetooth pairs a phone with wireless headphones. It uses short-range radio."),
    ("Cats", "Cats sleep for most of the day. They hunt at dawn and dusk."),
    ("Volcanoes", "Volcanoes erupt molten rock called lava. Ash clouds can ground aircraft."),
    ("Honey bees", "Honey bees dance to share where flowers are. A hive has one queen."),
    ("Sourdough", "Sourdough bread rises with wild yeast. The starter is fed flour and water."),
    ("Glaciers", "Glaciers carve valleys as they slowly move. Many are shrinking as climate warms."),
    ("Chess", "Chess openings control the centre of the board. The king castles for safety."),
    ("Tides", "Tides rise and fall with the pull of the moon. Spring tides are the largest."),
    ("Vaccines", "Vaccines train the immune system with harmless antigens. Boosters renew protection."),
    ("Photosynthesis", "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen."),
    ("Jazz", "Jazz musicians improvise over chord changes. Swing rhythm gives it its feel."),
    ("Bicycles", "Bicycle gears let a rider climb hills with less effort. Chains need oil."),
    ("Coffee", "Coffee beans are roasted to bring out flavour. Caffeine keeps people awake."),
    ("Earthquakes", "Earthquakes happen when tectonic plates slip. Seismographs record the shaking."),
    ("Penguins", "Penguins cannot fly but swim fast. Emperor penguins breed in the Antarctic winter."),
    ("Compilers", "Compilers translate source code into machine instructions. They optimise loops."),
    ("Tea", "Green tea is steamed while black tea is oxidised. Both come from the same plant."),
    ("Rainbows", "Rainbows appear when sunlight is refracted in raindrops. Red is on the outside."),
    ("Marathons", "Marathon runners cover 42 kilometres. Training builds endurance over months."),
    ("Origami", "Origami folds a single sheet of paper into shapes without cutting it."),
    ("Lighthouses", "Lighthouses warn ships of rocks with a rotating lamp. Keepers once lived inside."),
    ("Mushrooms", "Mushrooms are the fruit of fungi. Some are edible and some are poisonous."),
    ("Telescopes", "Telescopes gather light with lenses or mirrors to see distant galaxies."),
]
DOCS = [{"_id": f"doc{i:02d}", "title": title, "text": text} for i, (title, text) in enumerate(TOPICS)]
QUERIES = [
    {"_id": "t1", "text": "how big do goldfish get"},
    {"_id": "t2", "text": "wireless headphones pairing"},
    {"_id": "t3", "text": "why do bees dance"},
    {"_id": "t4", "text": "how are valleys carved by ice"},
]
QRELS = [("t1", "doc00", 1), ("t2", "doc01", 1), ("t3", "doc04", 1), ("t4", "doc06", 1)]
