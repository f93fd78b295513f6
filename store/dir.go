package store

// Dir returns the directory the store is in, as given to Open.
func (s *Store) Dir() string { return s.dir }
