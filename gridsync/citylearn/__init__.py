"""CityLearn interoperability: read CityLearn 1.3 datasets, step them with GridSync's
controllers and CityLearn's battery physics, report CityLearn's KPIs."""
