// Placeholder until the fixture maker lands.
return 0;
